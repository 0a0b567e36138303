"""A scripted expert for the Python env: writes code for the task from the question text alone, runs it
with the tool, and answers with the printed result. Used by `agentgym check-env`, tests and SFT data.
It never reads the env's hidden answer."""

from __future__ import annotations

import re

_RESULT = re.compile(r"<result>\n?(.*?)\n?</result>", re.S)

# (pattern over the question, code template using the pattern's groups)
RECIPES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"What is (\d+)\*\*(\d+) mod (\d+)\?"), "print(pow({0}, {1}, {2}))"),
    (re.compile(r"What is ([\d*]+)\?"), "print({0})"),
    (re.compile(r"Compute ([\d*+\- ]+)\."), "print({0})"),
    (re.compile(r"Solve for x: (\d+)\*x ([+-]) (\d+) = (-?\d+)\."), "print(({3} - ({1}{2})) // {0})"),
    (re.compile(r"positive root of x\*\*2 \+ \((-?\d+)\)\*x \+ \((-?\d+)\) = 0"),
     "import math; print((-({0}) + math.isqrt(({0})**2 - 4*({1}))) // 2)"),
    (re.compile(r"Solve (\d+)\*x \+ (\d+)\*y = (\d+) and (\d+)\*x \+ (\d+)\*y = (\d+)\."),
     "a1, b1, c1, a2, b2, c2 = {0}, {1}, {2}, {3}, {4}, {5}\nd = a1*b2 - a2*b1\n"
     "print((c1*b2 - c2*b1) // d + (a1*c2 - a2*c1) // d)"),
    (re.compile(r"\$(\d+) grows at (\d+)% interest compounded yearly for (\d+) years"),
     "print(round({0} * (1 + {1} / 100) ** {2}, 2))"),
    (re.compile(r"(\d+) pens cost (\d+) cents\. How many dollars do (\d+) pens cost"),
     "print(round({1} / {0} * {2} / 100, 2))"),
    (re.compile(r"choose (\d+) of (\d+) people"), "import math; print(math.comb({1}, {0}))"),
]


def code_for(question: str) -> str | None:
    for pattern, template in RECIPES:
        if m := pattern.search(question):
            return template.format(*m.groups())
    return None


def python_expert(context: str) -> str:
    """Next action given the conversation so far (XML tool format)."""
    turn = context.rsplit("<|im_start|>assistant", 1)[-1]
    results = _RESULT.findall(turn)
    if results:
        return f"<answer>{results[-1].strip()}</answer>"
    question = context.rsplit("<|im_start|>user", 1)[-1]
    code = code_for(question)
    return f"<python>{code}</python>" if code else "<answer>I cannot solve this</answer>"

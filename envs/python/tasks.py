"""Tasks whose exact answer needs computation: procedurally generated (seeded, three difficulty levels,
a held-out split from a disjoint seed space) or loaded from a GSM8K/MATH-style JSONL file.

Every generated task is a dict ``{"kind", "difficulty", "question", "answer"}`` plus the parameters the
scripted expert needs to write its code from the question text. Answers are never 0, so a policy that
always answers 0 (or nothing) solves none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.envs.answers import as_number
from agentgym.jsonl import read_rows

Task = dict[str, Any]
DIFFICULTIES = ("easy", "medium", "hard")


class TaskFileError(ValueError):
    """A task file is missing, malformed, or a row lacks a field; the message names the line."""


def _digits(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(10 ** (lo - 1), 10**hi))


def product(rng: np.random.Generator, level: int) -> Task:
    a, b = _digits(rng, 2, 2 + level), _digits(rng, 2, 2 + level)
    return {"question": f"What is {a}*{b}?", "answer": a * b, "expression": f"{a}*{b}"}


def big_sum(rng: np.random.Generator, level: int) -> Task:
    terms = [int(x) for x in rng.integers(100, 10 ** (3 + level), size=4 + 2 * level)]
    expr = " + ".join(map(str, terms))
    return {"question": f"Compute {expr}.", "answer": sum(terms), "expression": expr}


def power(rng: np.random.Generator, level: int) -> Task:
    base, exp, sub = int(rng.integers(3, 9 + 2 * level)), int(rng.integers(5, 9 + 3 * level)), int(rng.integers(1, 999))
    return {"question": f"Compute {base}**{exp} - {sub}.", "answer": base**exp - sub, "expression": f"{base}**{exp} - {sub}"}


def modular(rng: np.random.Generator, level: int) -> Task:
    base, exp, mod = int(rng.integers(2, 50)), int(rng.integers(10, 10 ** (2 + level))), int(rng.integers(7, 1000))
    answer = pow(base, exp, mod)
    if answer == 0:
        mod += 1
        answer = pow(base, exp, mod)
    return {"question": f"What is {base}**{exp} mod {mod}?", "answer": answer, "expression": f"pow({base}, {exp}, {mod})"}


def linear(rng: np.random.Generator, level: int) -> Task:
    x = int(rng.integers(2, 50 * (level + 1))) * (1 if rng.random() < 0.7 else -1)
    a, b = int(rng.integers(2, 30 + 40 * level)), int(rng.integers(-500, 500))
    c = a * x + b
    sign = "+" if b >= 0 else "-"
    return {"question": f"Solve for x: {a}*x {sign} {abs(b)} = {c}.", "answer": x, "a": a, "b": b, "c": c}


def quadratic(rng: np.random.Generator, level: int) -> Task:
    r1, r2 = int(rng.integers(1, 15 + 10 * level)), -int(rng.integers(1, 15 + 10 * level))
    b, c = -(r1 + r2), r1 * r2
    return {"question": f"Find the positive root of x**2 + ({b})*x + ({c}) = 0.", "answer": r1, "b": b, "c": c}


def system2(rng: np.random.Generator, level: int) -> Task:
    x, y = (int(v) for v in rng.integers(1, 20 + 20 * level, size=2))
    a1, b1, a2, b2 = (int(v) for v in rng.integers(1, 12, size=4))
    if a1 * b2 == a2 * b1:
        b2 += 1
    c1, c2 = a1 * x + b1 * y, a2 * x + b2 * y
    return {"question": f"Solve {a1}*x + {b1}*y = {c1} and {a2}*x + {b2}*y = {c2}. What is x + y?",
            "answer": x + y, "coefficients": [a1, b1, c1, a2, b2, c2]}


def interest(rng: np.random.Generator, level: int) -> Task:
    principal, rate, years = int(rng.integers(1, 100)) * 100, int(rng.integers(1, 12)), int(rng.integers(2, 6 + 5 * level))
    amount = round(principal * (1 + rate / 100) ** years, 2)
    return {"question": f"${principal} grows at {rate}% interest compounded yearly for {years} years. "
                        f"What is the final amount, to the cent?", "answer": amount,
            "principal": principal, "rate": rate, "years": years}


def unit_rate(rng: np.random.Generator, level: int) -> Task:
    items, cost = int(rng.integers(3, 40)), int(rng.integers(100, 5000 * (level + 1)))
    want = int(rng.integers(50, 500))
    answer = round(cost / items * want / 100, 2)  # cents -> dollars
    return {"question": f"{items} pens cost {cost} cents. How many dollars do {want} pens cost, to the cent?",
            "answer": answer, "items": items, "cost": cost, "want": want}


def combinations(rng: np.random.Generator, level: int) -> Task:
    n = int(rng.integers(10, 30 + 20 * level))
    k = int(rng.integers(2, min(n - 1, 6 + 4 * level)))
    return {"question": f"In how many ways can you choose {k} of {n} people?", "answer": math.comb(n, k), "n": n, "k": k}


GENERATORS: dict[str, tuple[str, Callable[[np.random.Generator, int], Task]]] = {
    "product": ("arithmetic", product), "sum": ("arithmetic", big_sum), "power": ("arithmetic", power),
    "modular": ("arithmetic", modular), "linear": ("algebra", linear), "quadratic": ("algebra", quadratic),
    "system": ("algebra", system2), "interest": ("word", interest), "unit_rate": ("word", unit_rate),
    "combinations": ("word", combinations),
}
EASY_KINDS = ("product", "sum", "power")
TEST_SEED_OFFSET = 1_000_000_007


def generate(rng: np.random.Generator, kinds: tuple[str, ...], difficulty: str, split: str) -> Task:
    if split == "test":  # a disjoint seed space: held-out tasks never coincide with training ones
        rng = np.random.default_rng(int(rng.integers(2**31)) + TEST_SEED_OFFSET)
    kind = kinds[int(rng.integers(len(kinds)))]
    level = DIFFICULTIES.index(difficulty) if difficulty != "mixed" else int(rng.integers(3))
    family, fn = GENERATORS[kind]
    task = fn(rng, level)
    return {"kind": kind, "family": family, "difficulty": DIFFICULTIES[level], **task}


def load_jsonl(path: str | Path) -> list[Task]:
    """GSM8K/MATH-style rows: ``question`` (or ``problem``) and ``answer`` (GSM8K's '... #### 42', or a
    MATH ``solution`` with a final ``\\boxed{}``)."""
    path = Path(path)
    tasks = []
    for lineno, row in read_rows(path, TaskFileError):
        question = row.get("question", row.get("problem"))
        if not isinstance(question, str):
            raise TaskFileError(f"{path}:{lineno}: missing field 'question' (or 'problem')")
        raw = row.get("answer", row.get("solution"))
        if raw is None:
            raise TaskFileError(f"{path}:{lineno}: missing field 'answer' (or 'solution')")
        answer = str(raw).split("####")[-1].strip() if "####" in str(raw) else str(raw)
        number = as_number(answer)
        tasks.append({"kind": "file", "family": "file", "difficulty": "file", "question": question,
                      "answer": number if number is not None else answer, "line": lineno})
    if not tasks:
        raise TaskFileError(f"task file {path} has no tasks")
    return tasks

"""A scripted expert for the MiniWoB++ tasks in `DEFAULT_TASKS`, reading only what a model reads.

It finds the last ``Task:`` line and element list in the conversation, recognises the task by its
instruction, and decides the next action from the page as shown (field values, checkbox states, the
selected option), so it keeps no state between calls and works as a ``context -> action`` function for
`agentgym check-env`, rollouts and SFT warm starts. Multi-step tasks (forms, checkboxes) advance because
the page shows what is already done.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

_LINE = re.compile(r"^\[(\d+)\] (\S+)(.*)$")
_STRING = r'"(?:[^"\\]|\\.)*"'


@dataclass
class Shown:
    ref: int
    tag: str
    text: str = ""
    id: str = ""
    value: str | None = None
    options: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)


def parse_page(context: str) -> tuple[str, list[Shown]]:
    """The last task instruction and element list in `context`."""
    at = context.rfind("Task: ")
    if at < 0:
        return "", []
    block = context[at:]
    task = block.split("\n", 1)[0].removeprefix("Task: ").strip()
    shown = []
    for line in block.split("Elements:\n", 1)[-1].splitlines():
        m = _LINE.match(line)
        if not m:
            if shown:
                break  # the list ended (a chat marker or the next message follows)
            continue
        el, rest = Shown(int(m.group(1)), m.group(2)), m.group(3)
        if t := re.match(r"^ (" + _STRING + ")", rest):
            el.text = json.loads(t.group(1))
        if i := re.search(r" id=(\S+)", rest):
            el.id = i.group(1)
        if v := re.search(r" value=(" + _STRING + ")", rest):
            el.value = json.loads(v.group(1))
        if o := re.search(r" options=(\[.*?\])(?= \(| @)", rest):
            el.options = json.loads(o.group(1))
        if f := re.search(r" \(([a-z, ]+)\) @", rest):
            el.flags = set(f.group(1).split(", "))
        shown.append(el)
    return task, shown


def _act(kind: str, **args: object) -> str:
    return json.dumps({"action_type": kind, **args}, ensure_ascii=False)


def _click_text(shown: list[Shown], text: str, tags: tuple[str, ...] = ()) -> str:
    for el in shown:
        if el.text == text and (not tags or el.tag in tags):
            return _act("click", ref=el.ref)
    return _act("click", x=80, y=105)  # not on the page: a harmless click, the next screen may show it


def _fill(field_el: Shown, wanted: str) -> str | None:
    """The next action that makes `field_el` hold `wanted`, or None when it already does."""
    if field_el.value == wanted:
        return None
    if field_el.value:  # wrong content: replace it
        return _act("type", ref=field_el.ref, text=wanted, clear=True)
    return _act("type", ref=field_el.ref, text=wanted)


def _submit(shown: list[Shown], label: str) -> str:
    buttons = [e for e in shown if e.tag == "button" and e.text.lower() == label.lower()]
    return _act("click", ref=buttons[0].ref) if buttons else _click_text(shown, label)


def _fields(shown: list[Shown]) -> list[Shown]:
    return [e for e in shown if e.tag.startswith("input:") and e.tag not in ("input:checkbox", "input:radio")
            or e.tag == "textarea"]


def _enter_text(m: re.Match, shown: list[Shown]) -> str:
    fields = _fields(shown)
    if fields and (step := _fill(fields[0], m.group(1))):
        return step
    return _submit(shown, "Submit")


def _login(m: re.Match, shown: list[Shown]) -> str:
    for el in _fields(shown):
        wanted = m.group(1) if el.id == "username" else m.group(2) if el.id == "password" else None
        if wanted is not None and (step := _fill(el, wanted)):
            return step
    return _submit(shown, "Login")


def _checkboxes(m: re.Match, shown: list[Shown]) -> str:
    wanted = set() if m.group(1) == "nothing" else {w.strip() for w in re.split(r",\s*", m.group(1)) if w.strip()}
    label = ""
    for el in shown:  # each checkbox follows the label that holds it
        if el.tag == "label":
            label = el.text
        elif el.tag == "input:checkbox" and ("checked" in el.flags) != (label in wanted):
            return _act("click", ref=el.ref)
    return _submit(shown, "Submit")


def _choose(m: re.Match, shown: list[Shown]) -> str:
    for el in shown:
        if el.tag == "select":
            if el.value != m.group(1):
                return _act("select", ref=el.ref, option=m.group(1))
            break
    return _submit(shown, "Submit")


def _focus(m: re.Match, shown: list[Shown]) -> str:
    fields = _fields(shown)
    return _act("click", ref=fields[0].ref) if fields else _act("click", x=80, y=105)


def _dialog(m: re.Match, shown: list[Shown]) -> str:
    for el in shown:
        if el.tag == "button" and el.text.lower() in ("close", "x", "×"):
            return _act("click", ref=el.ref)
    return _act("click", x=80, y=105)


RULES: list[tuple[re.Pattern, Callable[[re.Match, list[Shown]], str]]] = [
    (re.compile(r'^Click on the "(.*)" button\.$'), lambda m, s: _click_text(s, m.group(1), ("button",))),
    (re.compile(r'^Click on the link "(.*)"\.$'), lambda m, s: _click_text(s, m.group(1))),
    (re.compile(r"^Click on (Tab #\d+)\.$"), lambda m, s: _click_text(s, m.group(1), ("a",))),
    (re.compile(r'^Close the dialog box by clicking the "x"\.$'), _dialog),
    (re.compile(r'^Enter "(.*)" into the text field and press Submit\.$'), _enter_text),
    (re.compile(r"^Focus into the textbox\.$"), _focus),
    (re.compile(r"^Select (.*) from the list and click Submit\.$"), _choose),  # before the looser checkbox rule
    (re.compile(r"^Select (.*?) and click Submit\.$"), _checkboxes),
    (re.compile(r'^Enter the username "(.*)" and the password "(.*)" into the text fields and press login\.$'), _login),
]


def miniwob_expert(context: str) -> str:
    """The next action for the last page in `context` (a conversation rendered by the engine)."""
    task, shown = parse_page(context)
    for pattern, rule in RULES:
        if m := pattern.match(task):
            return rule(m, shown)
    return _act("click", x=80, y=105)  # a task this expert does not know: one harmless click

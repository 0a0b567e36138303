"""The browser action space: one action per step, as a JSON object or a function call.

    {"action_type": "click", "ref": 3}            click(3)            click an element by its ref
    {"action_type": "click", "x": 80, "y": 120}   click(x=80, y=120)  click viewport coordinates
    {"action_type": "type", "ref": 4, "text": "hi"}  type(4, "hi")    click the field, then type at its end
    {"action_type": "type", "ref": 4, "text": "hi", "clear": true}      replace what the field holds
    {"action_type": "type", "text": "hi"}         type("hi")          type into the focused element
    {"action_type": "key", "key": "Enter"}        key("Enter")        a key or chord ("Control+a")
    {"action_type": "scroll", "direction": "down", "ref": 5}  scroll("down", 5)  (ref optional)
    {"action_type": "select", "ref": 6, "option": "Blue"}  select(6, "Blue")  pick an option of a select

Reasoning around the action is allowed; the last JSON object with an ``action_type`` (or a Hermes-style
``{"name": ..., "arguments": {...}}`` tool call) is the action, else the last line that is a call of one of
these functions (parsed with Python's own parser, keyword or positional arguments). What cannot be
parsed or carried out raises `ActionError` with a message the agent can act on.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from agentgym.envs.browser.dom import REF_ATTR, Element
from agentgym.parsing import json_objects

ActionType = Literal["click", "type", "key", "scroll", "select"]
ACTION_TYPES: tuple[str, ...] = ActionType.__args__  # type: ignore[attr-defined]
EXAMPLE = '{"action_type": "click", "ref": 3}'
# positional parameters of the function-call style, by how many arguments were given
POSITIONAL = {"click": {1: ("ref",), 2: ("x", "y")}, "type": {1: ("text",), 2: ("ref", "text")},
              "key": {1: ("key",)}, "scroll": {1: ("direction",), 2: ("direction", "ref")},
              "select": {2: ("ref", "option")}}
SCROLL_PX = 100


class ActionError(ValueError):
    """An action that cannot be parsed or carried out; the message is shown to the agent."""


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action_type: ActionType
    ref: int | None = None
    x: float | None = None
    y: float | None = None
    text: str | None = None
    key: str | None = None
    direction: Literal["up", "down", "left", "right"] | None = None
    option: str | None = None
    clear: bool = False  # type: select the field's content first, so the text replaces it

    @model_validator(mode="after")
    def _required_fields(self) -> Action:
        kind = self.action_type
        if kind == "click" and self.ref is None and (self.x is None or self.y is None):
            raise ValueError('click needs "ref" (an element number) or both "x" and "y"')
        if kind == "type" and self.text is None:
            raise ValueError('type needs "text"')
        if kind == "key" and not self.key:
            raise ValueError('key needs "key", e.g. "Enter", "Tab" or "Control+a"')
        if kind == "scroll" and self.direction is None:
            raise ValueError('scroll needs "direction": "up", "down", "left" or "right"')
        if kind == "select" and (self.ref is None or self.option is None):
            raise ValueError('select needs "ref" (the select element) and "option" (its text)')
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), ensure_ascii=False)


_CALL_LINE = re.compile(r"^\s*(?:Action:\s*)?`*((?:%s)\s*\(.*\))`*\s*$" % "|".join(ACTION_TYPES), re.M)


def _function_call(text: str) -> dict[str, Any] | None:
    matches = _CALL_LINE.findall(text)
    if not matches:
        return None
    source = matches[-1]
    try:
        call = ast.parse(source, mode="eval").body
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            raise ValueError
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise ActionError(f"Could not read the call {source[:120]!r}: arguments must be plain numbers or "
                          'quoted strings, e.g. click(3) or type(4, "hello").') from None
    name = call.func.id
    if args:
        names = POSITIONAL[name].get(len(args))
        if names is None:
            counts = " or ".join(str(n) for n in POSITIONAL[name])
            raise ActionError(f"{name}() takes {counts} positional arguments, got {len(args)}.")
        kwargs.update(zip(names, args))
    return {"action_type": name, **kwargs}


def parse_action(text: str) -> Action:
    """The action in an agent's message, or `ActionError` saying what to fix."""
    raw: dict[str, Any] | None = None
    objects = json_objects(text)
    typed = [o for o in objects if "action_type" in o]
    if typed:
        raw = dict(typed[-1])
    else:
        calls = [o for o in objects if isinstance(o.get("name"), str) and isinstance(o.get("arguments"), dict)]
        if calls:
            raw = {"action_type": calls[-1]["name"], **calls[-1]["arguments"]}
        else:
            raw = _function_call(text)
    if raw is None:
        hint = ' The JSON object has no "action_type".' if objects else ""
        raise ActionError(f"No action found.{hint} Write one action as a JSON object, e.g. {EXAMPLE}, or a call "
                          f"such as click(3); actions: {', '.join(ACTION_TYPES)}.")
    kind = raw["action_type"]
    if isinstance(kind, str):
        raw["action_type"] = kind = kind.strip().lower()
    if kind not in ACTION_TYPES:
        raise ActionError(f"Unknown action {kind!r}; use one of {', '.join(ACTION_TYPES)}.")
    try:
        return Action.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise ActionError(f"Invalid action: {where + ': ' if where else ''}{msg}.") from None


def _element(action: Action, shown: list[Element]) -> Element:
    for el in shown:
        if el.ref == action.ref:
            return el
    refs = ", ".join(str(e.ref) for e in shown[:40])
    raise ActionError(f"There is no element [{action.ref}] on the page; the elements are {refs or 'none'}.")


async def execute(page: Any, action: Action, shown: list[Element], viewport: tuple[int, int], timeout_ms: float) -> None:
    """Carry out `action` on a Playwright page against the elements the agent was shown."""
    kind = action.action_type
    target = _element(action, shown) if action.ref is not None else None
    locator = page.locator(f"[{REF_ATTR}='{target.ref}']") if target is not None else None
    if target is not None and target.disabled and kind in ("click", "type", "select"):
        raise ActionError(f"Element [{target.ref}] is disabled.")
    if kind == "click":
        if target is not None:
            x, y = target.center
        else:
            assert action.x is not None and action.y is not None
            if not (0 <= action.x < viewport[0] and 0 <= action.y < viewport[1]):
                raise ActionError(f"({action.x:g}, {action.y:g}) is outside the page, which is "
                                  f"{viewport[0]}x{viewport[1]}.")
            x, y = action.x, action.y
        await page.mouse.click(x, y)  # a real click at the element's centre, as a person would
    elif kind == "type":
        if target is not None:
            await page.mouse.click(*target.center)
            if target.tag in ("input", "textarea"):
                await page.keyboard.press("End")  # the caret lands where the click was; type at the end
        if action.clear:
            await page.keyboard.press("Control+a")
            await page.keyboard.press("Delete")
        await page.keyboard.type(action.text or "")
    elif kind == "key":
        try:
            await page.keyboard.press(action.key or "")
        except Exception as e:
            if "Unknown key" in str(e):
                raise ActionError(f'Unknown key {action.key!r}; use names like "Enter", "Tab", "ArrowDown", '
                                  '"Backspace" or chords like "Control+a".') from None
            raise
    elif kind == "scroll":
        dx, dy = {"up": (0, -SCROLL_PX), "down": (0, SCROLL_PX), "left": (-SCROLL_PX, 0), "right": (SCROLL_PX, 0)}[
            action.direction or "down"]
        if target is not None:
            await page.mouse.move(*target.center)
        await page.mouse.wheel(dx, dy)
    elif kind == "select":
        assert target is not None and locator is not None
        if target.options is None:
            raise ActionError(f"Element [{target.ref}] is a {target.tag}, not a select; select needs a select element.")
        if action.option not in target.options:
            raise ActionError(f"Element [{target.ref}] has no option {action.option!r}; its options are "
                              f"{json.dumps(target.options, ensure_ascii=False)}.")
        await locator.select_option(label=action.option, timeout=timeout_ms)

"""The AndroidWorld action space: one JSON object per step, e.g. ``{"action_type": "click", "index": 3}``,
validated by pydantic and carried out on any `Device` (the simulated phone or a real one over adb) with
the same code, so both backends interpret an action identically.

Actions: click / double_tap / long_press (an element ``index`` or ``x``,``y`` screen coordinates),
input_text (``text``, optionally into element ``index``: it is tapped first), keyboard_enter,
navigate_back, navigate_home, scroll (``direction`` the content moves to reveal: "down" shows what is
below; optionally inside element ``index``), swipe (``direction`` the finger moves), open_app
(``app_name``), wait, answer (``text``), status (``goal_status``: "complete" or "infeasible", ends the
episode). The message may hold reasoning around the object (M3A's "Reason: ... Action: {...}"); the last
JSON object with an ``action_type`` is the action.
"""

from __future__ import annotations

import json
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from agentgym.envs.android.ui import Node
from agentgym.parsing import json_objects

ActionType = Literal["click", "double_tap", "long_press", "input_text", "keyboard_enter", "navigate_back",
                     "navigate_home", "scroll", "swipe", "open_app", "wait", "answer", "status"]
ACTION_TYPES: tuple[str, ...] = ActionType.__args__  # type: ignore[attr-defined]
EXAMPLE = '{"action_type": "click", "index": 3}'


class ActionError(ValueError):
    """An action that cannot be carried out; the message is shown to the agent."""


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action_type: ActionType
    index: int | None = None
    x: int | None = None
    y: int | None = None
    text: str | None = None
    direction: Literal["up", "down", "left", "right"] | None = None
    app_name: str | None = None
    goal_status: Literal["complete", "infeasible"] | None = None

    @model_validator(mode="after")
    def _required_fields(self) -> Action:
        kind = self.action_type
        if kind in ("click", "double_tap", "long_press") and self.index is None and (self.x is None or self.y is None):
            raise ValueError(f'{kind} needs "index" (an element number) or both "x" and "y"')
        if kind in ("input_text", "answer") and self.text is None:
            raise ValueError(f'{kind} needs "text"')
        if kind in ("scroll", "swipe") and self.direction is None:
            raise ValueError(f'{kind} needs "direction": "up", "down", "left" or "right"')
        if kind == "open_app" and not self.app_name:
            raise ValueError('open_app needs "app_name"')
        if kind == "status" and self.goal_status is None:
            raise ValueError('status needs "goal_status": "complete" or "infeasible"')
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), ensure_ascii=False)


def parse_action(text: str) -> Action:
    """The action in an agent's message, or `ActionError` saying what to fix."""
    objects = [o for o in json_objects(text) if isinstance(o, dict)]
    if not objects:
        raise ActionError(f"No JSON action found. Write one action as a JSON object, e.g. {EXAMPLE}.")
    with_type = [o for o in objects if "action_type" in o]
    if not with_type:
        raise ActionError(f'The JSON object has no "action_type". Write e.g. {EXAMPLE}; action types: '
                          f"{', '.join(ACTION_TYPES)}.")
    raw = dict(with_type[-1])
    if isinstance(raw["action_type"], str):
        raw["action_type"] = raw["action_type"].strip().lower()
        if raw["action_type"] not in ACTION_TYPES:
            raise ActionError(f"Unknown action_type {raw['action_type']!r}; use one of {', '.join(ACTION_TYPES)}.")
    try:
        return Action.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise ActionError(f"Invalid action: {where + ': ' if where else ''}{msg}.") from None


class Device(Protocol):
    """What both backends offer: the screen as a tree and as pixels, and the input primitives of a phone."""

    width: int
    height: int

    def tree(self) -> Node: ...
    def screenshot_png(self) -> bytes: ...
    def tap(self, x: int, y: int) -> None: ...
    def long_press(self, x: int, y: int) -> None: ...
    def type_text(self, text: str) -> None: ...
    def key(self, name: Literal["back", "home", "enter"]) -> None: ...
    def swipe(self, x1: int, y1: int, x2: int, y2: int) -> None: ...
    def open_app(self, name: str) -> None: ...
    def wait(self) -> None: ...


def _target(action: Action, shown: list[Node], device: Device) -> tuple[int, int]:
    if action.index is not None:
        if not 0 <= action.index < len(shown):
            raise ActionError(f"There is no element {action.index}; the screen has elements 0-{len(shown) - 1}."
                              if shown else f"There is no element {action.index}; the screen has no elements.")
        return shown[action.index].center
    assert action.x is not None and action.y is not None
    if not (0 <= action.x < device.width and 0 <= action.y < device.height):
        raise ActionError(f"({action.x}, {action.y}) is off the screen, which is {device.width}x{device.height}.")
    return action.x, action.y


_FINGER = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
_OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}


def _swipe(device: Device, area: tuple[int, int, int, int], finger: str) -> None:
    left, top, right, bottom = area
    cx, cy = (left + right) // 2, (top + bottom) // 2
    dx, dy = _FINGER[finger]
    half_w, half_h = (right - left) * 3 // 10, (bottom - top) * 3 // 10
    device.swipe(cx - dx * half_w, cy - dy * half_h, cx + dx * half_w, cy + dy * half_h)


def execute(device: Device, action: Action, shown: list[Node]) -> None:
    """Carry out a device action (not answer/status, which the env handles) against the elements shown."""
    kind = action.action_type
    if kind in ("click", "double_tap", "long_press"):
        x, y = _target(action, shown, device)
        if kind == "long_press":
            device.long_press(x, y)
        else:
            device.tap(x, y)
            if kind == "double_tap":
                device.tap(x, y)
    elif kind == "input_text":
        if action.index is not None:
            device.tap(*_target(action, shown, device))
        device.type_text(action.text or "")
    elif kind == "keyboard_enter":
        device.key("enter")
    elif kind == "navigate_back":
        device.key("back")
    elif kind == "navigate_home":
        device.key("home")
    elif kind in ("scroll", "swipe"):
        if action.index is not None:
            _target(action, shown, device)
            area = shown[action.index].bounds
        else:  # the biggest scrollable on screen, else the whole screen
            scrollables = [n for n in shown if n.scrollable]
            area = (max(scrollables, key=lambda n: (n.bounds[2] - n.bounds[0]) * (n.bounds[3] - n.bounds[1])).bounds
                    if scrollables else (0, 0, device.width, device.height))
        assert action.direction is not None
        finger = _OPPOSITE[action.direction] if kind == "scroll" else action.direction
        _swipe(device, area, finger)
    elif kind == "open_app":
        device.open_app(action.app_name or "")
    elif kind == "wait":
        device.wait()
    else:
        raise ActionError(f"{kind} is not a device action")

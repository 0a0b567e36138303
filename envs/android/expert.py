"""Scripted experts: one UI plan per task template, carried out through the screen like an agent would.

The expert reads only what a model reads (the goal line and the numbered element lists in the
conversation), finds each plan step's target on the current screen by its text, description or id,
scrolls when the target is not in view, clears a text field before typing into it, and answers question
tasks from what the screen shows. It keeps no state between calls: the position in the plan is found by
replaying its own decisions over the screens seen so far (a scroll or a field clear does not advance the
plan), so it works as a `context -> action` function for `agentgym check-env` and rollouts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from agentgym.envs.android.tasks import TEMPLATES, Template
from agentgym.envs.android.ui import SCREEN_HEADER
_LINE = re.compile(r"^\[(\d+)\] (\S+)(.*)$")
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_TEXT = re.compile(r"^ " + _QUOTED)
_ATTR = re.compile(r" (desc|hint)=" + _QUOTED)
_ID = re.compile(r" id=(\S+)")
_FLAGS = re.compile(r" \(([^()]*)\)$")


@dataclass
class Element:
    index: int
    cls: str
    text: str = ""
    desc: str = ""
    hint: str = ""
    id: str = ""
    flags: set[str] = field(default_factory=set)


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s)


def parse_screen(block: str) -> list[Element]:
    """The elements of one screen listing, as written by `ui.describe`."""
    out = []
    for line in block.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        rest = m.group(3)
        el = Element(int(m.group(1)), m.group(2))
        if t := _TEXT.match(rest):
            el.text = _unescape(t.group(1))
            rest = rest[t.end():]
        for a in _ATTR.finditer(rest):
            setattr(el, a.group(1), _unescape(a.group(2)))
        if i := _ID.search(rest):
            el.id = i.group(1)
        if f := _FLAGS.search(rest):
            el.flags = set(f.group(1).split(", "))
        out.append(el)
    return out


# ---- plan steps: each maps (screen) -> (action, advances the plan) -----------------------------------
Step = Callable[[list[Element]], tuple[dict, bool]]


def _find(screen: list[Element], text: str = "", desc: str = "", id: str = "") -> Element | None:
    for el in screen:
        if el.id == "clock":
            continue
        if (not text or el.text == text) and (not desc or el.desc == desc) and (not id or el.id == id):
            return el
    return None


def _scroll_or_fail(screen: list[Element]) -> tuple[dict, bool]:
    if any("scrollable" in el.flags for el in screen):
        return {"action_type": "scroll", "direction": "down"}, False
    return {"action_type": "status", "goal_status": "infeasible"}, True


def open_app(name: str) -> Step:
    return lambda screen: ({"action_type": "open_app", "app_name": name}, True)


def click(text: str = "", desc: str = "", id: str = "", long: bool = False) -> Step:
    def step(screen: list[Element]) -> tuple[dict, bool]:
        el = _find(screen, text, desc, id)
        if el is None:
            return _scroll_or_fail(screen)
        return {"action_type": "long_press" if long else "click", "index": el.index}, True
    return step


def type_into(id: str, text: str) -> Step:
    def step(screen: list[Element]) -> tuple[dict, bool]:
        el = _find(screen, id=id)
        if el is None:
            return _scroll_or_fail(screen)
        if el.text and el.text != text:
            clear = _find(screen, id=f"{id}_clear")
            if clear is not None:
                return {"action_type": "click", "index": clear.index}, False
        return {"action_type": "input_text", "text": text, "index": el.index}, True
    return step


def answer(read: Callable[[list[Element]], str | None]) -> Step:
    def step(screen: list[Element]) -> tuple[dict, bool]:
        value = read(screen)
        if value is None:
            return _scroll_or_fail(screen)
        return {"action_type": "answer", "text": value}, True
    return step


def done(screen: list[Element]) -> tuple[dict, bool]:
    return {"action_type": "status", "goal_status": "complete"}, True


def _last_said(name: str) -> Callable[[list[Element]], str | None]:
    def read(screen: list[Element]) -> str | None:
        said = [el.text for el in screen if el.desc.startswith(f"{name} said ")]
        return said[-1] if said else None
    return read


def _start_time(screen: list[Element]) -> str | None:
    return next((el.text for el in screen if el.id == "title" and re.fullmatch(r"\d\d:\d\d", el.text)), None)


def plan(template: str, p: dict) -> list[Step]:
    """The UI steps that accomplish a template's goal with parameters `p`."""
    settings = {"airplane_mode_on": ["Network & internet", "Airplane mode"],
                "wifi_off": ["Network & internet", "Internet", "Wi-Fi"],
                "bluetooth_on": ["Connected devices", "Connection preferences", "Bluetooth"],
                "dark_theme_on": ["Display", "Dark theme", "Use Dark theme"],
                "do_not_disturb_on": ["Sound & vibration", "Do Not Disturb", "Turn on now"]}
    if template in settings:
        return [open_app("Settings"), *(click(text=label) for label in settings[template]), done]
    plans: dict[str, Callable[[], list[Step]]] = {
        "add_contact": lambda: [open_app("Contacts"), click(desc="Create contact"), type_into("name", p["name"]),
                                type_into("phone", p["phone"]), click(text="Save"), done],
        "add_contact_with_email": lambda: [open_app("Contacts"), click(desc="Create contact"), type_into("name", p["name"]),
                                           type_into("phone", p["phone"]), type_into("email", p["email"]),
                                           click(text="Save"), done],
        "edit_contact_phone": lambda: [open_app("Contacts"), click(text=p["name"]), click(text="Edit"),
                                       type_into("phone", p["phone"]), click(text="Save"), done],
        "delete_contact": lambda: [open_app("Contacts"), click(text=p["name"]), click(text="Delete"),
                                   click(text="Delete"), done],
        "favorite_contact": lambda: [open_app("Contacts"), click(text=p["name"]), click(desc="Add to favorites"), done],
        "send_message": lambda: [open_app("Messages"), click(desc="Start chat"), type_into("to", p["name"]),
                                 type_into("message", p["text"]), click(text="Send"), done],
        "send_message_to_number": lambda: [open_app("Messages"), click(desc="Start chat"), type_into("to", p["number"]),
                                           type_into("message", p["text"]), click(text="Send"), done],
        "reply_to_last_message": lambda: [open_app("Messages"), click(text=p["name"]), type_into("message", p["text"]),
                                          click(desc="Send SMS"), done],
        "read_last_message": lambda: [open_app("Messages"), click(text=p["name"]), answer(_last_said(p["name"])), done],
        "add_event": lambda: [open_app("Calendar"), click(desc="Create new event"), type_into("title", p["title"]),
                              type_into("date", p["date"]), type_into("start", p["start"]), click(text="Save"), done],
        "delete_event": lambda: [open_app("Calendar"), click(text=p["title"]), click(text="Delete"), click(text="Delete"),
                                 done],
        "event_start_time": lambda: [open_app("Calendar"), click(text=p["title"]), answer(_start_time), done],
        "set_alarm": lambda: [open_app("Clock"), click(desc="Add alarm"), type_into("hour", str(p["hour"])),
                              type_into("minute", f"{int(p['minute']):02d}"), click(text="Save"), done],
        "set_labelled_alarm": lambda: [open_app("Clock"), click(desc="Add alarm"), type_into("hour", str(p["hour"])),
                                       type_into("minute", f"{int(p['minute']):02d}"), type_into("label", p["label"]),
                                       click(text="Save"), done],
        "turn_off_alarm": lambda: [open_app("Clock"), click(desc=f"{p['time']} alarm"), done],
        "delete_alarm": lambda: [open_app("Clock"), click(text=p["time"]), click(text="Delete"), done],
        "screen_timeout": lambda: [open_app("Settings"), click(text="Display"), click(text="Screen timeout"),
                                   click(text=p["value"]), done],
        "delete_file": lambda: [open_app("Files"), click(text=p["name"], long=True), click(text="Delete"),
                                click(text="Delete"), done],
        "rename_file": lambda: [open_app("Files"), click(text=p["name"], long=True), click(text="Rename"),
                                type_into("rename", p["new_name"]), click(text="OK"), done],
        "create_note": lambda: [open_app("Notes"), click(desc="New note"), type_into("title", p["title"]),
                                type_into("body", p["body"]), click(text="Save"), done],
        "delete_note": lambda: [open_app("Notes"), click(text=p["title"]), click(text="Delete"), click(text="Delete"), done],
    }
    return plans[template]()


# ---- goal text -> template and parameters -------------------------------------------------------------
def _goal_pattern(template: Template) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template.goal)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
    return re.compile(f"^{regex}$")


_PATTERNS = [(t, _goal_pattern(t)) for t in TEMPLATES.values()]


def parse_goal(goal: str) -> tuple[Template, dict] | None:
    """The template and parameters a goal was written from. Where several templates match (a parameter can
    swallow another template's literal words), the one with the most literal text is the most specific."""
    matches = [(t, m) for t, pattern in _PATTERNS if (m := pattern.match(goal.strip()))]
    if not matches:
        return None
    template, m = max(matches, key=lambda tm: len(re.sub(r"\{\w+\}", "", tm[0].goal)))
    params: dict = m.groupdict()
    if "time" in params:
        h, mnt = params["time"].split(":")
        params.update(hour=int(h), minute=int(mnt))
    return template, params


def next_action(goal: str, screens: list[str]) -> dict:
    """The expert's action after seeing `screens` (every screen listing so far, the current one last)."""
    parsed = parse_goal(goal)
    if parsed is None:
        return {"action_type": "status", "goal_status": "infeasible"}
    steps = plan(parsed[0].name, parsed[1])
    pointer = 0
    for block in screens[:-1]:  # replay past decisions to find where in the plan we are
        if pointer >= len(steps):
            break
        _, advances = steps[pointer](parse_screen(block))
        pointer += advances
    if pointer >= len(steps):
        return {"action_type": "status", "goal_status": "complete"}
    action, _ = steps[pointer](parse_screen(screens[-1]))
    return action


_GOAL = re.compile(r"^Goal: (.*)$", re.M)


def android_expert(context: str) -> str:
    """`agentgym check-env` / rollout expert: the conversation so far -> the next action message."""
    goal = _GOAL.search(context)
    screens = [part.split("\n\n", 1)[0] for part in context.split(SCREEN_HEADER + "\n")[1:]]
    action = next_action(goal.group(1) if goal else "", screens)
    return "Action: " + json.dumps(action, ensure_ascii=False)

"""Seeded task templates for the simulated phone, AndroidWorld-style: a goal in words, parameters drawn
from the episode's seed, a difficulty level (1-3, for curriculum sampling) and a success check on the
phone's final state.

The check is strict on purpose: the final state must equal the initial state with exactly the intended
change applied (`Template.apply` on a copy), so a policy that clicks around and happens to toggle the
right switch while changing anything else fails, and so does one that does the right thing twice.
Question templates also compare the agent's `answer` with the true one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentgym.envs.android.state import (EVENT_TITLES, FILE_STEMS, FIRST_NAMES, LAST_NAMES, NOTE_TITLES, NOTE_WORDS,
                                         PHRASES, TIMEOUTS, Alarm, Contact, Event, Message, Note, PhoneState,
                                         phone_number, pick)

Params = dict[str, Any]
Rng = np.random.Generator


@dataclass(frozen=True)
class Template:
    name: str
    app: str
    difficulty: int  # 1 (a few taps) .. 3 (long forms, scrolling, dialogs)
    goal: str  # str.format template over the parameters
    prepare: Callable[[Rng, PhoneState], Params]  # draws parameters; may adjust the state so the goal makes sense
    apply: Callable[[PhoneState, Params], None]  # the intended change, applied to a copy of the initial state
    answer: Callable[[PhoneState, Params], str] | None = None  # question templates: the true answer

    def goal_text(self, params: Params) -> str:
        return self.goal.format(**params)

    def check(self, initial: PhoneState, final: PhoneState, params: Params) -> bool:
        expected = copy.deepcopy(initial)
        self.apply(expected, params)
        if final.comparable() != expected.comparable():
            return False
        if self.answer is not None:
            return _norm(final.answer) == _norm(self.answer(initial, params))
        return True


def _norm(text: str | None) -> str:
    return " ".join((text or "").strip().strip(".").casefold().split())


# ---- parameter helpers --------------------------------------------------------------------------------
def _new_name(rng: Rng, s: PhoneState) -> str:
    while True:
        name = f"{pick(rng, FIRST_NAMES)} {pick(rng, LAST_NAMES)}"
        if s.contact(name) is None and s.conversation(name) is None:
            return name


def _contact(rng: Rng, s: PhoneState) -> Contact:
    return pick(rng, s.contacts)


def _incoming_conversation(rng: Rng, s: PhoneState) -> Params:
    conv = pick(rng, s.conversations)
    if not conv.messages or conv.messages[-1].outgoing:
        conv.messages.append(Message(False, pick(rng, PHRASES), s.clock))
    return {"name": conv.peer}


def _free_alarm_time(rng: Rng, s: PhoneState) -> tuple[int, int]:
    while True:
        h, m = int(rng.integers(5, 23)), int(pick(rng, [5, 25, 35, 55]))
        if all((a.hour, a.minute) != (h, m) for a in s.alarms):
            return h, m


def _alarm(rng: Rng, s: PhoneState, enabled: bool | None = None) -> Alarm:
    alarm = pick(rng, s.alarms)
    if enabled is not None:
        alarm.enabled = enabled
    return alarm


def _setting(attr: str, value: bool) -> tuple[Callable, Callable]:
    def prepare(rng: Rng, s: PhoneState) -> Params:
        setattr(s.settings, attr, not value)
        return {}

    def apply(s: PhoneState, p: Params) -> None:
        setattr(s.settings, attr, value)

    return prepare, apply


def _text(rng: Rng) -> str:
    return f"{pick(rng, PHRASES)} {int(rng.integers(2, 99))}"


def _unique_event(rng: Rng, s: PhoneState) -> Event:
    e = pick(rng, s.events)
    for other in s.events:  # make the title unique so the goal names one event
        if other is not e and other.title == e.title:
            other.title += " 2"
    return e


# ---- the templates ------------------------------------------------------------------------------------
def _add_contact(rng: Rng, s: PhoneState) -> Params:
    return {"name": _new_name(rng, s), "phone": phone_number(rng)}


def _add_contact_email(rng: Rng, s: PhoneState) -> Params:
    p = _add_contact(rng, s)
    return {**p, "email": p["name"].split()[0].lower() + f"{int(rng.integers(10, 99))}@mail.com"}


def _edit_phone(rng: Rng, s: PhoneState) -> Params:
    return {"name": _contact(rng, s).name, "phone": phone_number(rng)}


def _set_phone(s: PhoneState, p: Params) -> None:
    s.contact(p["name"]).phone = p["phone"]  # type: ignore[union-attr]


def _favorite(rng: Rng, s: PhoneState) -> Params:
    c = _contact(rng, s)
    c.favorite = False
    return {"name": c.name}


def _new_conversation_peer(rng: Rng, s: PhoneState) -> Params:
    names = [c.name for c in s.contacts if s.conversation(c.name) is None] or [c.name for c in s.contacts]
    return {"name": pick(rng, names), "text": _text(rng)}


def _number_peer(rng: Rng, s: PhoneState) -> Params:
    return {"number": phone_number(rng), "text": _text(rng)}


def _reply(rng: Rng, s: PhoneState) -> Params:
    return {**_incoming_conversation(rng, s), "text": _text(rng)}


def _last_incoming(s: PhoneState, p: Params) -> str:
    conv = s.conversation(p["name"])
    return next(m.text for m in reversed(conv.messages) if not m.outgoing)  # type: ignore[union-attr]


def _new_event(rng: Rng, s: PhoneState) -> Params:
    title = pick(rng, [t for t in EVENT_TITLES if all(e.title != t for e in s.events)])
    return {"title": title, "date": f"2026-03-{int(rng.integers(3, 29)):02d}",
            "start": f"{int(rng.integers(8, 20)):02d}:{pick(rng, [0, 15, 30, 45]):02d}"}


def _event(rng: Rng, s: PhoneState) -> Params:
    e = _unique_event(rng, s)
    return {"title": e.title, "date": e.date}


def _delete_event(s: PhoneState, p: Params) -> None:
    s.events = [e for e in s.events if e.title != p["title"]]


def _new_alarm(rng: Rng, s: PhoneState) -> Params:
    h, m = _free_alarm_time(rng, s)
    return {"time": f"{h}:{m:02d}", "hour": h, "minute": m}


def _new_alarm_label(rng: Rng, s: PhoneState) -> Params:
    return {**_new_alarm(rng, s), "label": pick(rng, ["Gym", "Medicine", "Wake up", "Bus", "Call dad", "Standup"])}


def _alarm_params(enabled: bool | None) -> Callable[[Rng, PhoneState], Params]:
    def prepare(rng: Rng, s: PhoneState) -> Params:
        a = _alarm(rng, s, enabled)
        return {"time": a.time, "hour": a.hour, "minute": a.minute}
    return prepare


def _find_alarm(s: PhoneState, p: Params) -> Alarm:
    return next(a for a in s.alarms if (a.hour, a.minute) == (p["hour"], p["minute"]))


def _timeout(rng: Rng, s: PhoneState) -> Params:
    return {"value": pick(rng, [t for t in TIMEOUTS if t != s.settings.screen_timeout])}


def _file(rng: Rng, s: PhoneState) -> Params:
    return {"name": pick(rng, s.files).name}


def _rename_file(rng: Rng, s: PhoneState) -> Params:
    old = pick(rng, s.files).name
    ext = old[old.rfind("."):]
    while True:
        new = f"{pick(rng, FILE_STEMS)}_{int(rng.integers(2020, 2027))}{ext}"
        if all(f.name != new for f in s.files):
            return {"name": old, "new_name": new}


def _new_note(rng: Rng, s: PhoneState) -> Params:
    title = pick(rng, [t for t in NOTE_TITLES if all(n.title != t for n in s.notes)])
    return {"title": title, "body": ", ".join(pick(rng, NOTE_WORDS, 2))}


def _note(rng: Rng, s: PhoneState) -> Params:
    return {"title": pick(rng, s.notes).title}


_TEMPLATES = [
    Template("add_contact", "Contacts", 2, "Add a new contact named {name} with phone number {phone}.", _add_contact,
             lambda s, p: s.contacts.append(Contact(p["name"], p["phone"]))),
    Template("add_contact_with_email", "Contacts", 3,
             "Add a new contact named {name} with phone number {phone} and email {email}.", _add_contact_email,
             lambda s, p: s.contacts.append(Contact(p["name"], p["phone"], p["email"]))),
    Template("edit_contact_phone", "Contacts", 3, "Change the phone number of {name} to {phone}.", _edit_phone, _set_phone),
    Template("delete_contact", "Contacts", 2, "Delete the contact {name}.", lambda r, s: {"name": _contact(r, s).name},
             lambda s, p: setattr(s, "contacts", [c for c in s.contacts if c.name != p["name"]])),
    Template("favorite_contact", "Contacts", 1, "Add {name} to your favorite contacts.", _favorite,
             lambda s, p: setattr(s.contact(p["name"]), "favorite", True)),
    Template("send_message", "Messages", 2, 'Send a text message to {name} saying "{text}".', _new_conversation_peer,
             lambda s, p: s.send_message(p["name"], p["text"])),
    Template("send_message_to_number", "Messages", 2, 'Text the number {number} the message "{text}".', _number_peer,
             lambda s, p: s.send_message(p["number"], p["text"])),
    Template("reply_to_last_message", "Messages", 2, 'Reply to the last message from {name} with "{text}".', _reply,
             lambda s, p: s.send_message(p["name"], p["text"])),
    Template("read_last_message", "Messages", 1, "What did {name} last write to you? Answer with the message text.",
             lambda r, s: _incoming_conversation(r, s), lambda s, p: None, _last_incoming),
    Template("add_event", "Calendar", 3, 'Add a calendar event "{title}" on {date} at {start}.', _new_event,
             lambda s, p: s.events.append(Event(p["title"], p["date"], p["start"]))),
    Template("delete_event", "Calendar", 2, 'Delete the calendar event "{title}" on {date}.', _event, _delete_event),
    Template("event_start_time", "Calendar", 2, 'At what time does the event "{title}" on {date} start? Answer as HH:MM.',
             _event, lambda s, p: None, lambda s, p: next(e.start for e in s.events if e.title == p["title"])),
    Template("set_alarm", "Clock", 2, "Set an alarm for {time}.", _new_alarm,
             lambda s, p: s.alarms.append(Alarm(p["hour"], p["minute"]))),
    Template("set_labelled_alarm", "Clock", 3, 'Set an alarm for {time} with the label "{label}".', _new_alarm_label,
             lambda s, p: s.alarms.append(Alarm(p["hour"], p["minute"], p["label"]))),
    Template("turn_off_alarm", "Clock", 1, "Turn off the {time} alarm.", _alarm_params(True),
             lambda s, p: setattr(_find_alarm(s, p), "enabled", False)),
    Template("delete_alarm", "Clock", 2, "Delete the {time} alarm.", _alarm_params(None),
             lambda s, p: s.alarms.remove(_find_alarm(s, p))),
    Template("airplane_mode_on", "Settings", 1, "Turn on airplane mode.", *_setting("airplane_mode", True)),
    Template("wifi_off", "Settings", 1, "Turn off Wi-Fi.", *_setting("wifi", False)),
    Template("bluetooth_on", "Settings", 1, "Turn on Bluetooth.", *_setting("bluetooth", True)),
    Template("dark_theme_on", "Settings", 1, "Turn on the dark theme.", *_setting("dark_theme", True)),
    Template("do_not_disturb_on", "Settings", 1, "Turn on Do Not Disturb.", *_setting("do_not_disturb", True)),
    Template("screen_timeout", "Settings", 2, "Set the screen timeout to {value}.", _timeout,
             lambda s, p: setattr(s.settings, "screen_timeout", p["value"])),
    Template("delete_file", "Files", 2, "Delete the file {name} from Downloads.", _file,
             lambda s, p: setattr(s, "files", [f for f in s.files if f.name != p["name"]])),
    Template("rename_file", "Files", 3, "Rename the file {name} to {new_name}.", _rename_file,
             lambda s, p: setattr(next(f for f in s.files if f.name == p["name"]), "name", p["new_name"])),
    Template("create_note", "Notes", 2, 'Create a note titled "{title}" with the text "{body}".', _new_note,
             lambda s, p: s.notes.append(Note(p["title"], p["body"]))),
    Template("delete_note", "Notes", 2, 'Delete the note "{title}".', _note,
             lambda s, p: setattr(s, "notes", [n for n in s.notes if n.title != p["title"]])),
]
TEMPLATES: dict[str, Template] = {t.name: t for t in _TEMPLATES}
DIFFICULTIES = (1, 2, 3)

"""Calendar: an agenda of events by date and time, an event's page (with delete) and the new-event form."""

from __future__ import annotations

import re

from agentgym.envs.android import widgets as w
from agentgym.envs.android.apps.common import confirm_dialog, error_dialog, page, show_error, stack_fields
from agentgym.envs.android.phone import App, Screen, SimPhone
from agentgym.envs.android.state import Event
from agentgym.envs.android.ui import Node

PKG = "com.google.android.calendar"
_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _find(phone: SimPhone, key: tuple[str, str, str]) -> Event | None:
    return next((e for e in phone.state.events if (e.title, e.date, e.start) == key), None)


def _list(phone: SimPhone, screen: Screen) -> Node:
    events = sorted(phone.state.events, key=lambda e: (e.date, e.start, e.title))

    def row(e: Event):
        return lambda b: w.list_row(PKG, "event_row", e.title, f"{e.date} · {e.start}", b,
                                    lambda: phone.push(Screen("Calendar", "detail", (e.title, e.date, e.start))))

    return page(phone, PKG, "Schedule", lambda area: [w.scroll_list(screen, PKG, "agenda", area,
                                                                    [(w.ROW_H, row(e)) for e in events], "Nothing planned")],
                up=False, fab=("Create new event", "floating_action_button", lambda: phone.push(Screen("Calendar", "new"))))


def _detail(phone: SimPhone, screen: Screen) -> Node:
    e = _find(phone, screen.arg)
    if e is None:
        phone.pop()
        return _list(phone, phone.screen)

    def content(area):
        left, top, right, _ = area
        rows = [("date", e.date, "Date"), ("time", e.start, "Starts"), ("location", e.location or "No location", "Location")]
        return [w.list_row(PKG, f"{id}_row", text, sub, (left, top + i * w.ROW_H, right, top + (i + 1) * w.ROW_H), None)
                for i, (id, text, sub) in enumerate(rows)]

    return page(phone, PKG, e.title, content,
                actions=[("Delete", "delete_event", lambda: setattr(phone.screen, "dialog", {"kind": "delete"}))])


def _new(phone: SimPhone, screen: Screen) -> Node:
    def save() -> None:
        f = {k: screen.fields.get(k, "").strip() for k in ("title", "date", "start", "location")}
        if not f["title"]:
            return show_error(phone, "Add a title.")
        if not _DATE.match(f["date"]):
            return show_error(phone, "Enter the date as YYYY-MM-DD, e.g. 2026-03-14.")
        m = _TIME.match(f["start"])
        if not m:
            return show_error(phone, "Enter the start time as HH:MM (24-hour), e.g. 09:30.")
        start = f"{int(m.group(1)):02d}:{m.group(2)}"
        phone.state.events.append(Event(f["title"], f["date"], start, f["location"]))
        phone.pop()

    fields = [("title", "Title"), ("date", "Date (YYYY-MM-DD)"), ("start", "Start time (HH:MM)"), ("location", "Location")]
    return page(phone, PKG, "New event", lambda area: stack_fields(phone, screen, PKG, area, fields),
                actions=[("Save", "save", save)])


def build(phone: SimPhone, screen: Screen) -> Node:
    return {"list": _list, "detail": _detail, "new": _new}[screen.kind](phone, screen)


def build_dialog(phone: SimPhone, screen: Screen) -> Node:
    if screen.dialog and screen.dialog["kind"] == "delete":
        def delete() -> None:
            e = _find(phone, screen.arg)
            phone.state.events = [x for x in phone.state.events if x is not e]
            phone.pop()
        return confirm_dialog(phone, PKG, "Delete this event?", f"{screen.arg[0]} on {screen.arg[1]}", "Delete", delete)
    return error_dialog(phone, PKG, screen.dialog["message"] if screen.dialog else "")


APP = App("Calendar", PKG, "list", build, build_dialog)

"""Clock: alarms by time, each with an on/off switch; the alarm editor (hour, minute, label, delete)."""

from __future__ import annotations

from agentgym.envs.android import widgets as w
from agentgym.envs.android.apps.common import error_dialog, page, show_error, stack_fields
from agentgym.envs.android.phone import App, Screen, SimPhone
from agentgym.envs.android.state import Alarm
from agentgym.envs.android.ui import Node

PKG = "com.google.android.deskclock"


def _find(phone: SimPhone, key: tuple[int, int]) -> Alarm | None:
    return next((a for a in phone.state.alarms if (a.hour, a.minute) == key), None)


def _list(phone: SimPhone, screen: Screen) -> Node:
    alarms = sorted(phone.state.alarms, key=lambda a: (a.hour, a.minute))

    def row(a: Alarm):
        def toggle() -> None:
            a.enabled = not a.enabled

        def make(b):
            left, top, right, bottom = b
            sw = w.switch(PKG, "onoff", a.enabled, (right - 192, top + 44, right - w.MARGIN, bottom - 44), toggle,
                          desc=f"{a.time} alarm")
            fields = {"hour": str(a.hour), "minute": f"{a.minute:02d}", "label": a.label}
            return w.list_row(PKG, "alarm_row", a.time, a.label, b,
                              lambda: phone.push(Screen("Clock", "edit", (a.hour, a.minute), fields=dict(fields))),
                              trailing=sw)
        return make

    return page(phone, PKG, "Alarm", lambda area: [w.scroll_list(screen, PKG, "alarm_recycler_view", area,
                                                                 [(w.ROW_H, row(a)) for a in alarms], "No alarms")],
                up=False, fab=("Add alarm", "fab", lambda: phone.push(Screen("Clock", "edit", None))))


def _edit(phone: SimPhone, screen: Screen) -> Node:
    def save() -> None:
        hour, minute = screen.fields.get("hour", "").strip(), screen.fields.get("minute", "").strip()
        if not (hour.isdigit() and 0 <= int(hour) <= 23 and minute.isdigit() and 0 <= int(minute) <= 59):
            return show_error(phone, "Enter an hour from 0 to 23 and a minute from 0 to 59.")
        h, m = int(hour), int(minute)
        existing = _find(phone, (h, m))
        if existing is not None and (h, m) != screen.arg:
            return show_error(phone, f"There is already an alarm at {existing.time}.")
        label = screen.fields.get("label", "").strip()
        if screen.arg is None:
            phone.state.alarms.append(Alarm(h, m, label, True))
        else:
            a = _find(phone, screen.arg)
            assert a is not None
            a.hour, a.minute, a.label, a.enabled = h, m, label, True
        phone.pop()

    def delete() -> None:
        a = _find(phone, screen.arg)
        phone.state.alarms = [x for x in phone.state.alarms if x is not a]
        phone.pop()

    actions = [("Delete", "delete", delete)] if screen.arg is not None else []
    fields = [("hour", "Hour (0-23)"), ("minute", "Minute (0-59)"), ("label", "Label")]
    return page(phone, PKG, "Edit alarm" if screen.arg else "New alarm",
                lambda area: stack_fields(phone, screen, PKG, area, fields), actions=actions + [("Save", "save", save)])


def build(phone: SimPhone, screen: Screen) -> Node:
    return {"list": _list, "edit": _edit}[screen.kind](phone, screen)


def build_dialog(phone: SimPhone, screen: Screen) -> Node:
    return error_dialog(phone, PKG, screen.dialog["message"] if screen.dialog else "")


APP = App("Clock", PKG, "list", build, build_dialog)

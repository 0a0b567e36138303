"""Settings: the main list and its pages (Network & internet, Connected devices, Display, Sound),
with switches and a screen-timeout chooser."""

from __future__ import annotations

from agentgym.envs.android import widgets as w
from agentgym.envs.android.apps.common import dismiss, page
from agentgym.envs.android.phone import App, Screen, SimPhone
from agentgym.envs.android.state import TIMEOUTS
from agentgym.envs.android.ui import Node

PKG = "com.android.settings"
SECTIONS = [("network", "Network & internet", "Wi-Fi, mobile data, airplane mode"),
            ("devices", "Connected devices", "Bluetooth"),
            ("display", "Display", "Dark theme, screen timeout"),
            ("sound", "Sound & vibration", "Do Not Disturb")]
SWITCHES = {"network": [("airplane_mode", "Airplane mode"), ("wifi", "Wi-Fi"), ("mobile_data", "Mobile data")],
            "devices": [("bluetooth", "Bluetooth")],
            "display": [("dark_theme", "Dark theme")],
            "sound": [("do_not_disturb", "Do Not Disturb")]}


def _main(phone: SimPhone, screen: Screen) -> Node:
    def row(kind: str, title: str, sub: str):
        return lambda b: w.list_row(PKG, "dashboard_tile", title, sub, b, lambda: phone.push(Screen("Settings", kind)))

    return page(phone, PKG, "Settings", lambda area: [w.scroll_list(screen, PKG, "recycler_view", area,
                                                                    [(w.ROW_H, row(*s)) for s in SECTIONS])], up=False)


def _section(phone: SimPhone, screen: Screen) -> Node:
    settings = phone.state.settings

    def switch_row(attr: str, label: str):
        def toggle() -> None:
            setattr(settings, attr, not getattr(settings, attr))
        return lambda b: w.switch_row(PKG, f"{attr}_row", label, getattr(settings, attr), b, toggle)

    rows = [(w.ROW_H, switch_row(*s)) for s in SWITCHES[screen.kind]]
    if screen.kind == "display":
        rows.append((w.ROW_H, lambda b: w.list_row(PKG, "screen_timeout_row", "Screen timeout", settings.screen_timeout, b,
                                                   lambda: setattr(phone.screen, "dialog", {"kind": "timeout"}))))
    title = next(t for k, t, _ in SECTIONS if k == screen.kind)
    return page(phone, PKG, title, lambda area: [w.scroll_list(screen, PKG, "recycler_view", area, rows)])


def build(phone: SimPhone, screen: Screen) -> Node:
    return _main(phone, screen) if screen.kind == "main" else _section(phone, screen)


def build_dialog(phone: SimPhone, screen: Screen) -> Node:
    settings = phone.state.settings

    def option(value: str):
        def choose() -> None:
            settings.screen_timeout = value
            phone.screen.dialog = None

        def make(top: int) -> tuple[Node, int]:
            return (Node(cls="android.widget.RadioButton", text=value, package=PKG, resource_id=w.rid(PKG, "radio"),
                         bounds=(144, top, w.WIDTH - 144, top + 120), checkable=True,
                         checked=settings.screen_timeout == value, clickable=True, focusable=True, on_click=choose), 120)
        return make

    return w.dialog(PKG, "Screen timeout", "", [("Cancel", "button2", dismiss(phone))], body=[option(v) for v in TIMEOUTS])


APP = App("Settings", PKG, "main", build, build_dialog)

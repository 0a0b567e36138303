"""Settings: the main list and its pages (Network & internet, Connected devices, Display, Sound),
with switches and a screen-timeout chooser."""

from __future__ import annotations

from agentgym.envs.android import widgets as w
from agentgym.envs.android.apps.common import dismiss, page
from agentgym.envs.android.phone import App, Screen, SimPhone
from agentgym.envs.android.state import TIMEOUTS
from agentgym.envs.android.ui import Node

PKG = "com.android.settings"
# Each page: its title and rows; a row is a link to another page, a switch on a setting, a button that
# flips a setting, or the screen-timeout chooser. The depth follows Android 12's Settings.
PAGES: dict[str, tuple[str, list[tuple]]] = {
    "main": ("Settings", [("link", "network", "Network & internet", "Internet, airplane mode, hotspot"),
                          ("link", "devices", "Connected devices", "Bluetooth, pairing"),
                          ("link", "apps", "Apps", "Recent apps, default apps"),
                          ("link", "battery", "Battery", "battery_saver"),
                          ("link", "storage", "Storage", "41% used"),
                          ("link", "sound", "Sound & vibration", "Volume, Do Not Disturb"),
                          ("link", "display", "Display", "Dark theme, screen timeout"),
                          ("link", "location", "Location", "location"),
                          ("link", "security", "Security & privacy", "Screen lock, app permissions"),
                          ("link", "about", "About phone", "Pixel 7")]),
    "network": ("Network & internet", [("link", "internet", "Internet", "wifi"),
                                       ("link", "hotspot_page", "Hotspot & tethering", "hotspot"),
                                       ("switch", "airplane_mode", "Airplane mode"),
                                       ("link", "dns", "Private DNS", "Automatic")]),
    "internet": ("Internet", [("switch", "wifi", "Wi-Fi"), ("switch", "mobile_data", "Mobile data")]),
    "hotspot_page": ("Hotspot & tethering", [("switch", "hotspot", "Wi-Fi hotspot")]),
    "dns": ("Private DNS", []),
    "devices": ("Connected devices", [("link", "pairing", "Pair new device", ""),
                                      ("link", "connection", "Connection preferences", "Bluetooth, NFC")]),
    "pairing": ("Pair new device", []),
    "connection": ("Connection preferences", [("switch", "bluetooth", "Bluetooth"), ("switch", "nfc", "NFC"),
                                              ("link", "printing", "Printing", "Off")]),
    "printing": ("Printing", []),
    "apps": ("Apps", []),
    "battery": ("Battery", [("switch", "battery_saver", "Battery Saver")]),
    "storage": ("Storage", []),
    "sound": ("Sound & vibration", [("link", "dnd", "Do Not Disturb", "do_not_disturb"),
                                    ("switch", "vibrate_for_calls", "Vibrate for calls")]),
    "dnd": ("Do Not Disturb", [("button", "do_not_disturb", "Turn on now", "Turn off now")]),
    "display": ("Display", [("link", "dark", "Dark theme", "dark_theme"),
                            ("switch", "adaptive_brightness", "Adaptive brightness"),
                            ("switch", "auto_rotate", "Auto-rotate screen"), ("timeout",)]),
    "dark": ("Dark theme", [("switch", "dark_theme", "Use Dark theme")]),
    "location": ("Location", [("switch", "location", "Use location")]),
    "security": ("Security & privacy", []),
    "about": ("About phone", []),
}


def _on_off(settings, attr: str) -> str:
    return "On" if getattr(settings, attr) else "Off"


def build(phone: SimPhone, screen: Screen) -> Node:
    settings = phone.state.settings
    title, spec = PAGES[screen.kind]

    def toggle(attr: str):
        return lambda: setattr(settings, attr, not getattr(settings, attr))

    def row(r: tuple):
        if r[0] == "link":
            _, kind, label, sub = r
            sub = _on_off(settings, sub) if hasattr(settings, sub) else sub
            return lambda b: w.list_row(PKG, "dashboard_tile", label, sub, b, lambda: phone.push(Screen("Settings", kind)))
        if r[0] == "switch":
            return lambda b: w.switch_row(PKG, f"{r[1]}_row", r[2], getattr(settings, r[1]), b, toggle(r[1]))
        if r[0] == "button":
            def make(b):
                left, top, right, bottom = b
                label = r[3] if getattr(settings, r[1]) else r[2]
                return Node(cls="android.widget.LinearLayout", package=PKG, bounds=b, children=[
                    w.button(label, (left + w.MARGIN, top + 24, left + 600, bottom - 24), PKG, "zen_mode_button", toggle(r[1]))])
            return make
        return lambda b: w.list_row(PKG, "screen_timeout_row", "Screen timeout", settings.screen_timeout, b,
                                    lambda: setattr(phone.screen, "dialog", {"kind": "timeout"}))

    rows = [(w.ROW_H, row(r)) for r in spec]
    return page(phone, PKG, title, lambda area: [w.scroll_list(screen, PKG, "recycler_view", area, rows,
                                                              "Nothing to show here")], up=screen.kind != "main")


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

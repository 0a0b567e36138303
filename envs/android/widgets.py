"""Building blocks of simulated screens: Material-style widgets as view-tree `Node`s laid out on a
1080x2400 phone (status bar, app bar, list rows, text fields, switches, buttons, FABs, dialogs).

Every builder returns plain `Node`s with bounds in screen pixels and, where the real widget reacts to
touch, a callback; the renderer draws from the class names and the hit test dispatches to the callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agentgym.envs.android.ui import Bounds, Node

if TYPE_CHECKING:
    from agentgym.envs.android.phone import Screen, SimPhone

WIDTH, HEIGHT = 1080, 2400
STATUS_H = 84
APPBAR_H = 168
NAVBAR_H = 126
KEYBOARD_H = 840
ROW_H = 168
FIELD_H = 168
MARGIN = 48
SYSTEMUI = "com.android.systemui"


def rid(package: str, name: str) -> str:
    return f"{package}:id/{name}"


def text_view(text: str, bounds: Bounds, package: str, id: str = "", **kw) -> Node:
    return Node(cls="android.widget.TextView", text=text, bounds=bounds, package=package,
                resource_id=rid(package, id) if id else "", **kw)


def button(text: str, bounds: Bounds, package: str, id: str, on_click: Callable[[], object], desc: str = "") -> Node:
    return Node(cls="android.widget.Button", text=text, content_desc=desc, bounds=bounds, package=package,
                resource_id=rid(package, id), clickable=True, focusable=True, on_click=on_click)


def icon_button(desc: str, bounds: Bounds, package: str, id: str, on_click: Callable[[], object]) -> Node:
    return Node(cls="android.widget.ImageButton", content_desc=desc, bounds=bounds, package=package,
                resource_id=rid(package, id), clickable=True, focusable=True, on_click=on_click)


def status_bar(phone: SimPhone) -> Node:
    s = phone.state.settings
    icons = [text_view(phone.state.clock, (42, 18, 200, 66), SYSTEMUI, "clock")]
    right = 1038
    for desc, on in (("Battery 87 percent.", True), ("Wi-Fi signal full.", s.wifi and not s.airplane_mode),
                     ("Airplane mode on.", s.airplane_mode), ("Bluetooth on.", s.bluetooth and not s.airplane_mode),
                     ("Do not disturb on.", s.do_not_disturb)):
        if on:
            icons.append(Node(cls="android.widget.ImageView", content_desc=desc, package=SYSTEMUI,
                              bounds=(right - 54, 18, right, 66)))
            right -= 66
    return Node(cls="android.widget.FrameLayout", package=SYSTEMUI, resource_id=rid(SYSTEMUI, "status_bar"),
                bounds=(0, 0, WIDTH, STATUS_H), children=icons)


def app_bar(title: str, package: str, up: Callable[[], object] | None,
            actions: list[tuple[str, str, Callable[[], object]]]) -> Node:
    """A toolbar: optional "Navigate up" arrow, the title, and action buttons (text, id, callback) at the right."""
    top, bottom = STATUS_H, STATUS_H + APPBAR_H
    children = []
    left = 42
    if up is not None:
        children.append(icon_button("Navigate up", (0, top, 144, bottom), package, "navigate_up", up))
        left = 168
    right = WIDTH - 24
    buttons = []
    for label, id, cb in reversed(actions):
        w = max(144, 34 * len(label) + 60)
        buttons.append(button(label, (right - w, top + 24, right, bottom - 24), package, id, cb))
        right -= w + 12
    children.append(text_view(title, (left, top, right, bottom), package, "toolbar_title"))
    children.extend(reversed(buttons))
    return Node(cls="android.view.ViewGroup", package=package, resource_id=rid(package, "toolbar"),
                bounds=(0, top, WIDTH, bottom), children=children)


def list_row(package: str, id: str, title: str, subtitle: str, bounds: Bounds,
             on_click: Callable[[], object] | None, on_long_click: Callable[[], object] | None = None,
             trailing: Node | None = None, selected: bool = False) -> Node:
    left, top, right, bottom = bounds
    text_right = right - (200 if trailing is not None else MARGIN)
    kids = [text_view(title, (left + MARGIN, top + 24, text_right, top + 96), package, "title")]
    if subtitle:
        kids.append(text_view(subtitle, (left + MARGIN, top + 96, text_right, bottom - 20), package, "subtitle"))
    if trailing is not None:
        kids.append(trailing)
    return Node(cls="android.widget.LinearLayout", package=package, resource_id=rid(package, id), bounds=bounds,
                clickable=on_click is not None, long_clickable=on_long_click is not None, focusable=True,
                selected=selected, on_click=on_click, on_long_click=on_long_click, children=kids)


def switch(package: str, id: str, checked: bool, bounds: Bounds, on_toggle: Callable[[], object], desc: str = "") -> Node:
    return Node(cls="android.widget.Switch", package=package, resource_id=rid(package, id), bounds=bounds,
                text="ON" if checked else "OFF", content_desc=desc, checkable=True, checked=checked, clickable=True,
                focusable=True, on_click=on_toggle)


def switch_row(package: str, id: str, label: str, checked: bool, bounds: Bounds, on_toggle: Callable[[], object]) -> Node:
    left, top, right, bottom = bounds
    sw = switch(package, "switch_widget", checked, (right - 192, top + 44, right - MARGIN, bottom - 44), on_toggle)
    row = list_row(package, id, label, "", bounds, on_toggle, trailing=sw)
    return row


def text_field(phone: SimPhone, screen: Screen, key: str, hint: str, bounds: Bounds, package: str) -> Node:
    """An EditText bound to ``screen.fields[key]``; tapping focuses it (and brings up the keyboard); a
    "Clear" end icon empties it, as in Material text fields."""
    value = screen.fields.get(key, "")
    focused = screen.focus == key
    left, top, right, bottom = bounds
    edit = Node(cls="android.widget.EditText", text=value, hint=hint, package=package,
                resource_id=rid(package, key), bounds=(left, top, right - (120 if value else 0), bottom),
                clickable=True, focusable=True, focused=focused, long_clickable=True,
                on_click=lambda: phone.focus(key))
    kids = [edit]
    if value:
        def clear() -> None:
            screen.fields[key] = ""
            phone.focus(key)
        kids.append(icon_button(f"Clear {hint}", (right - 120, top + 24, right, bottom - 24), package,
                                f"{key}_clear", clear))
    return Node(cls="android.widget.FrameLayout", package=package, bounds=bounds, children=kids)


def fab(desc: str, package: str, id: str, bottom: int, on_click: Callable[[], object]) -> Node:
    return icon_button(desc, (WIDTH - 216, bottom - 216, WIDTH - 48, bottom - 48), package, id, on_click)


def scroll_list(screen: Screen, package: str, id: str, area: Bounds,
                rows: list[tuple[int, Callable[[Bounds], Node]]], empty: str = "") -> Node:
    """A RecyclerView over `rows` (height, builder): only rows intersecting the viewport exist in the tree,
    as on a device; scrolling moves ``screen.scroll`` within the content's height."""
    left, top, right, bottom = area
    total = sum(h for h, _ in rows)
    max_scroll = max(0, total - (bottom - top))
    screen.scroll = min(max(screen.scroll, 0), max_scroll)
    kids, y = [], top - screen.scroll
    for h, build in rows:
        if y + h > top and y < bottom:
            node = build((left, y, right, y + h))
            clip_top, clip_bottom = max(y, top), min(y + h, bottom)
            node.bounds = (left, clip_top, right, clip_bottom)
            for child in node.walk():  # children of a partly visible row are clipped to the list, as in a dump
                l, t, r, b = child.bounds
                child.bounds = (l, max(t, top), r, min(b, bottom)) if b > top and t < bottom else (0, 0, 0, 0)
            kids.append(node)
        y += h
    if not rows and empty:
        kids.append(text_view(empty, (left + MARGIN, top + 60, right - MARGIN, top + 160), package, "empty"))

    def on_scroll(dy: int) -> None:
        screen.scroll = min(max(screen.scroll + dy, 0), max_scroll)

    return Node(cls="androidx.recyclerview.widget.RecyclerView", package=package, resource_id=rid(package, id),
                bounds=area, scrollable=max_scroll > 0, focusable=True, children=kids,
                on_scroll=on_scroll if max_scroll > 0 else None)


def dialog(package: str, title: str, message: str, buttons: list[tuple[str, str, Callable[[], object]]],
           body: list[Callable[[int], tuple[Node, int]]] | None = None) -> Node:
    """A centred AlertDialog: title, message, optional body widgets (each a function of their top y
    returning (node, height)), and buttons along the bottom right."""
    left, right = 84, WIDTH - 84
    kids = [text_view(title, (left + 60, 0, right - 60, 0), package, "alertTitle")]
    y = 0
    layout: list[tuple[Node, int]] = [(kids[0], 120)]
    if message:
        layout.append((text_view(message, (left + 60, 0, right - 60, 0), package, "message"), 140))
    for make in body or []:
        layout.append(make(0))
    height = sum(h for _, h in layout) + 200
    top = (HEIGHT - height) // 2
    y = top + 40
    placed = []
    for node, h in layout:
        dy = y - node.bounds[1]
        for n in node.walk():
            l, t, r, b = n.bounds
            n.bounds = (l, t + dy, r, (b if b > t else t + h) + dy)
        placed.append(node)
        y += h
    x = right - 48
    for label, id, cb in reversed(buttons):
        w = 40 * len(label) + 80
        placed.append(button(label, (x - w, top + height - 160, x, top + height - 40), package, id, cb))
        x -= w + 24
    return Node(cls="android.widget.FrameLayout", package=package, resource_id=rid(package, "parentPanel"),
                bounds=(left, top, right, top + height), children=placed)

"""What every simulated app screen shares: the page frame (app bar, content area, FAB) and dialogs."""

from __future__ import annotations

from collections.abc import Callable

from agentgym.envs.android import widgets as w
from agentgym.envs.android.phone import Screen, SimPhone
from agentgym.envs.android.ui import Bounds, Node


def page(phone: SimPhone, package: str, title: str, content: Callable[[Bounds], list[Node]], *,
         up: bool = True, actions: list[tuple[str, str, Callable[[], object]]] | None = None,
         fab: tuple[str, str, Callable[[], object]] | None = None) -> Node:
    """An app window: app bar (with "Navigate up" unless `up` is False), content laid out in the area
    between the app bar and the keyboard or nav bar, and an optional floating action button."""
    bottom = phone.content_bottom()
    area = (0, w.STATUS_H + w.APPBAR_H, w.WIDTH, bottom)
    kids = [w.app_bar(title, package, (lambda: phone.key("back")) if up else None, actions or [])]
    kids += content(area)
    if fab is not None and not phone.keyboard_shown:
        kids.append(w.fab(fab[0], package, fab[1], bottom, fab[2]))
    return Node(cls="android.widget.FrameLayout", package=package, resource_id=w.rid(package, "content"),
                bounds=(0, w.STATUS_H, w.WIDTH, w.HEIGHT - w.NAVBAR_H), children=kids)


def stack_fields(phone: SimPhone, screen: Screen, package: str, area: Bounds,
                 fields: list[tuple[str, str]]) -> list[Node]:
    """Text fields (key, hint) one under another from the top of `area`."""
    left, top, right, _ = area
    nodes, y = [], top + w.MARGIN
    for key, hint in fields:
        nodes.append(w.text_field(phone, screen, key, hint, (left + w.MARGIN, y, right - w.MARGIN, y + w.FIELD_H), package))
        y += w.FIELD_H + 36
    return nodes


def dismiss(phone: SimPhone) -> Callable[[], None]:
    def go() -> None:
        phone.screen.dialog = None
    return go


def confirm_dialog(phone: SimPhone, package: str, title: str, message: str, label: str,
                   do: Callable[[], None]) -> Node:
    def confirmed() -> None:
        phone.screen.dialog = None
        do()
    return w.dialog(package, title, message, [("Cancel", "button2", dismiss(phone)), (label, "button1", confirmed)])


def error_dialog(phone: SimPhone, package: str, message: str) -> Node:
    return w.dialog(package, "Can't save", message, [("OK", "button1", dismiss(phone))])


def show_error(phone: SimPhone, message: str) -> None:
    phone.screen.dialog = {"kind": "error", "message": message}

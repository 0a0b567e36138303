"""Files: the Downloads folder. Tap opens a file's details; long press selects it, and the app bar then
offers Rename and Delete (each through a dialog)."""

from __future__ import annotations

from agentgym.envs.android import widgets as w
from agentgym.envs.android.apps.common import confirm_dialog, dismiss, page
from agentgym.envs.android.phone import App, Screen, SimPhone
from agentgym.envs.android.state import File
from agentgym.envs.android.ui import Node

PKG = "com.google.android.documentsui"


def _find(phone: SimPhone, name: str) -> File | None:
    return next((f for f in phone.state.files if f.name == name), None)


def _list(phone: SimPhone, screen: Screen) -> Node:
    files = sorted(phone.state.files, key=lambda f: f.name.casefold())
    selected = screen.fields.get("_selected")

    def row(f: File):
        def tap() -> None:
            if selected:
                screen.fields["_selected"] = "" if selected == f.name else f.name
            else:
                phone.push(Screen("Files", "detail", f.name))

        def long_press() -> None:
            screen.fields["_selected"] = f.name

        return lambda b: w.list_row(PKG, "item_root", f.name, f"{f.size_kb} kB", b, tap, long_press,
                                    selected=f.name == selected)

    def content(area):
        return [w.scroll_list(screen, PKG, "dir_list", area, [(w.ROW_H, row(f)) for f in files], "No items")]

    if selected:
        def start_rename() -> None:
            screen.fields["rename"] = selected
            screen.dialog = {"kind": "rename"}
        actions = [("Rename", "action_menu_rename", start_rename),
                   ("Delete", "action_menu_delete", lambda: setattr(screen, "dialog", {"kind": "delete"}))]
        return page(phone, PKG, "1 selected", content, actions=actions)
    return page(phone, PKG, "Downloads", content, up=False)


def _detail(phone: SimPhone, screen: Screen) -> Node:
    f = _find(phone, screen.arg)

    def content(area):
        left, top, right, _ = area
        return [w.list_row(PKG, "size_row", f"{f.size_kb} kB" if f else "", "Size", (left, top, right, top + w.ROW_H), None),
                w.text_view("No app on this phone can open this file.", (left + w.MARGIN, top + w.ROW_H + 40, right - w.MARGIN,
                                                                          top + w.ROW_H + 140), PKG, "message")]

    return page(phone, PKG, screen.arg, content)


def build(phone: SimPhone, screen: Screen) -> Node:
    return _list(phone, screen) if screen.kind == "list" else _detail(phone, screen)


def build_dialog(phone: SimPhone, screen: Screen) -> Node:
    name = screen.fields.get("_selected", "")
    if screen.dialog and screen.dialog["kind"] == "delete":
        def delete() -> None:
            phone.state.files = [f for f in phone.state.files if f.name != name]
            screen.fields["_selected"] = ""
        return confirm_dialog(phone, PKG, f"Delete “{name}”?", "This file will be permanently deleted.", "Delete", delete)

    def rename() -> None:
        new = screen.fields.get("rename", "").strip()
        screen.focus = None
        if not new or "/" in new:
            screen.dialog = {"kind": "rename", "error": "Enter a file name without '/'."}
            return
        if new != name and _find(phone, new) is not None:
            screen.dialog = {"kind": "rename", "error": f"A file named {new} already exists."}
            return
        f = _find(phone, name)
        if f is not None:
            f.name = new
        screen.fields["_selected"] = ""
        screen.dialog = None

    def field(top: int) -> tuple[Node, int]:
        return w.text_field(phone, screen, "rename", "File name", (144, top, w.WIDTH - 144, top + w.FIELD_H), PKG), w.FIELD_H + 20

    message = screen.dialog.get("error", "") if screen.dialog else ""
    return w.dialog(PKG, "Rename", message, [("Cancel", "button2", dismiss(phone)), ("OK", "button1", rename)], body=[field])


def on_back(phone: SimPhone, screen: Screen) -> bool:
    if screen.kind == "list" and screen.fields.get("_selected"):
        screen.fields["_selected"] = ""  # back first clears the selection
        return True
    return False


APP = App("Files", PKG, "list", build, build_dialog, on_back)

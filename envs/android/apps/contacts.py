"""Contacts: a list sorted by name, a contact's page (call/message, favourite star, edit, delete) and
the create/edit form."""

from __future__ import annotations

from agentgym.envs.android import widgets as w
from agentgym.envs.android.apps.common import confirm_dialog, error_dialog, page, show_error, stack_fields
from agentgym.envs.android.apps.messages import open_conversation
from agentgym.envs.android.phone import App, Screen, SimPhone
from agentgym.envs.android.state import Contact
from agentgym.envs.android.ui import Node

PKG = "com.android.contacts"


def _list(phone: SimPhone, screen: Screen) -> Node:
    contacts = sorted(phone.state.contacts, key=lambda c: c.name.casefold())

    def row(c: Contact):
        return lambda b: w.list_row(PKG, "contact_row", c.name, "★ Favorite" if c.favorite else "", b,
                                    lambda: phone.push(Screen("Contacts", "detail", c.name)))

    return page(phone, PKG, "Contacts", lambda area: [w.scroll_list(screen, PKG, "contact_list", area,
                                                                    [(w.ROW_H, row(c)) for c in contacts], "No contacts")],
                up=False, fab=("Create contact", "floating_action_button", lambda: _edit(phone, None)))


def _edit(phone: SimPhone, name: str | None) -> None:
    c = phone.state.contact(name) if name else None
    fields = {"name": c.name, "phone": c.phone, "email": c.email} if c else {}
    phone.push(Screen("Contacts", "edit", name, fields=fields))


def _detail(phone: SimPhone, screen: Screen) -> Node:
    c = phone.state.contact(screen.arg)
    if c is None:  # deleted underneath (cannot happen through the UI, but never crash)
        phone.pop()
        return _list(phone, phone.screen)

    def toggle_star() -> None:
        c.favorite = not c.favorite

    def message() -> None:
        open_conversation(phone, c.name)

    def content(area):
        left, top, right, _ = area
        nodes = [w.list_row(PKG, "phone_row", c.phone, "Mobile", (left, top, right, top + w.ROW_H), None)]
        if c.email:
            nodes.append(w.list_row(PKG, "email_row", c.email, "Email", (left, top + w.ROW_H, right, top + 2 * w.ROW_H), None))
        y = top + 2 * w.ROW_H + w.MARGIN
        nodes.append(w.button("Message", (left + w.MARGIN, y, left + 500, y + 144), PKG, "message_button", message))
        nodes.append(w.icon_button("Remove from favorites" if c.favorite else "Add to favorites",
                                   (right - 200, y, right - w.MARGIN, y + 144), PKG, "star", toggle_star))
        return nodes

    return page(phone, PKG, c.name, content,
                actions=[("Edit", "menu_edit", lambda: _edit(phone, c.name)),
                         ("Delete", "menu_delete", lambda: setattr(phone.screen, "dialog", {"kind": "delete"}))])


def _save(phone: SimPhone, screen: Screen) -> None:
    name = screen.fields.get("name", "").strip()
    number = screen.fields.get("phone", "").strip()
    email = screen.fields.get("email", "").strip()
    if not name:
        return show_error(phone, "A contact needs a name.")
    other = phone.state.contact(name)
    if other is not None and (screen.arg is None or other.name.casefold() != str(screen.arg).casefold()):
        return show_error(phone, f"There is already a contact named {other.name}.")
    if screen.arg is None:
        phone.state.contacts.append(Contact(name, number, email))
    else:
        c = phone.state.contact(screen.arg)
        assert c is not None
        c.name, c.phone, c.email = name, number, email
    phone.pop()
    if phone.screen.kind == "detail":
        phone.pop()
    phone.push(Screen("Contacts", "detail", name))


def _edit_page(phone: SimPhone, screen: Screen) -> Node:
    title = "Edit contact" if screen.arg else "Create contact"
    return page(phone, PKG, title,
                lambda area: stack_fields(phone, screen, PKG, area, [("name", "Name"), ("phone", "Phone"), ("email", "Email")]),
                actions=[("Save", "editor_menu_save_button", lambda: _save(phone, screen))])


def build(phone: SimPhone, screen: Screen) -> Node:
    return {"list": _list, "detail": _detail, "edit": _edit_page}[screen.kind](phone, screen)


def build_dialog(phone: SimPhone, screen: Screen) -> Node:
    if screen.dialog and screen.dialog["kind"] == "delete":
        def delete() -> None:
            phone.state.contacts = [c for c in phone.state.contacts if c.name != screen.arg]
            phone.pop()
        return confirm_dialog(phone, PKG, "Delete this contact?", f"{screen.arg} will be removed from your contacts.",
                              "Delete", delete)
    return error_dialog(phone, PKG, screen.dialog["message"] if screen.dialog else "")


APP = App("Contacts", PKG, "list", build, build_dialog)

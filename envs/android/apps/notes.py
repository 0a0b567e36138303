"""Notes: a list of notes and an editor (title and body) that saves on Save or when left with back, as
Keep does; Delete asks first."""

from __future__ import annotations

from agentgym.envs.android import widgets as w
from agentgym.envs.android.apps.common import confirm_dialog, page, stack_fields
from agentgym.envs.android.phone import App, Screen, SimPhone
from agentgym.envs.android.state import Note
from agentgym.envs.android.ui import Node

PKG = "com.example.notes"


def _list(phone: SimPhone, screen: Screen) -> Node:
    def row(i: int, n: Note):
        return lambda b: w.list_row(PKG, "note_row", n.title or "(untitled)", n.body.split("\n", 1)[0], b,
                                    lambda: phone.push(Screen("Notes", "edit", i, fields={"title": n.title, "body": n.body})))

    rows = [(w.ROW_H, row(i, n)) for i, n in enumerate(phone.state.notes)]
    return page(phone, PKG, "Notes", lambda area: [w.scroll_list(screen, PKG, "notes_list", area, rows, "No notes")],
                up=False, fab=("New note", "new_note_fab", lambda: phone.push(Screen("Notes", "edit", None))))


def save(phone: SimPhone, screen: Screen) -> None:
    title, body = screen.fields.get("title", "").strip(), screen.fields.get("body", "").strip()
    if screen.arg is None:
        if title or body:  # an empty new note is discarded, as in Keep
            phone.state.notes.append(Note(title, body))
            screen.arg = len(phone.state.notes) - 1
    elif 0 <= screen.arg < len(phone.state.notes):
        note = phone.state.notes[screen.arg]
        note.title, note.body = title, body


def _edit(phone: SimPhone, screen: Screen) -> Node:
    def done() -> None:
        save(phone, screen)
        phone.pop()

    actions = [("Save", "save", done)]
    if screen.arg is not None:
        actions.insert(0, ("Delete", "delete", lambda: setattr(screen, "dialog", {"kind": "delete"})))
    return page(phone, PKG, "Edit note" if screen.arg is not None else "New note",
                lambda area: stack_fields(phone, screen, PKG, area, [("title", "Title"), ("body", "Note")]),
                actions=actions)


def build(phone: SimPhone, screen: Screen) -> Node:
    return _list(phone, screen) if screen.kind == "list" else _edit(phone, screen)


def build_dialog(phone: SimPhone, screen: Screen) -> Node:
    def delete() -> None:
        del phone.state.notes[screen.arg]
        phone.pop()
    return confirm_dialog(phone, PKG, "Delete this note?", screen.fields.get("title", ""), "Delete", delete)


def on_back(phone: SimPhone, screen: Screen) -> bool:
    if screen.kind == "edit":
        save(phone, screen)
    return False


APP = App("Notes", PKG, "list", build, build_dialog, on_back)

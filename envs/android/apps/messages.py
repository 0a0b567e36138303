"""Messages: conversations (most recent first), a conversation thread with a compose box, and a new
chat form (recipient by contact name or phone number)."""

from __future__ import annotations

from agentgym.envs.android import widgets as w
from agentgym.envs.android.apps.common import error_dialog, page, show_error, stack_fields
from agentgym.envs.android.phone import App, Screen, SimPhone
from agentgym.envs.android.state import Conversation, Message
from agentgym.envs.android.ui import Node

PKG = "com.google.android.apps.messaging"


def open_conversation(phone: SimPhone, peer: str, replace: bool = False) -> None:
    """Show the thread with `peer`, scrolled to its newest message (the list clamps the offset)."""
    screen = Screen("Messages", "conversation", peer, scroll=10**9)
    phone.replace(screen) if replace else phone.push(screen)


def _list(phone: SimPhone, screen: Screen) -> Node:
    convs = sorted(phone.state.conversations, key=lambda c: c.messages[-1].time if c.messages else "", reverse=True)

    def row(c: Conversation):
        last = c.messages[-1] if c.messages else None
        snippet = ("You: " if last and last.outgoing else "") + (last.text if last else "")
        return lambda b: w.list_row(PKG, "conversation_row", c.peer, snippet, b,
                                    lambda: open_conversation(phone, c.peer))

    return page(phone, PKG, "Messages", lambda area: [w.scroll_list(screen, PKG, "conversation_list", area,
                                                                    [(w.ROW_H, row(c)) for c in convs], "No conversations")],
                up=False, fab=("Start chat", "start_chat_fab", lambda: phone.push(Screen("Messages", "new"))))


def _conversation(phone: SimPhone, screen: Screen) -> Node:
    conv = phone.state.conversation(screen.arg)
    messages = conv.messages if conv else []

    def do_send() -> None:
        text = screen.fields.get("message", "")
        if text.strip():
            phone.state.send_message(screen.arg, text)
            screen.fields["message"] = ""
            screen.scroll = 10**9  # the newest message comes into view

    def bubble(m: Message):
        def make(b):
            left, top, right, bottom = b
            if m.outgoing:  # sent bubbles on the right, received on the left
                box = (left + 300, top + 12, right - w.MARGIN, bottom - 12)
            else:
                box = (left + w.MARGIN, top + 12, right - 300, bottom - 12)
            who = "You" if m.outgoing else screen.arg
            bubble = w.text_view(m.text, box, PKG, "message_text", content_desc=f"{who} said {m.text} at {m.time}")
            return Node(cls="android.widget.LinearLayout", package=PKG, bounds=b, children=[bubble])
        return make

    def content(area):
        left, top, right, bottom = area
        thread = w.scroll_list(screen, PKG, "messages_list", (left, top, right, bottom - 200),
                               [(w.ROW_H, bubble(m)) for m in messages], "No messages yet")
        compose = w.text_field(phone, screen, "message", "Text message",
                               (left + w.MARGIN, bottom - 184, right - 200, bottom - 16), PKG)
        send_button = w.icon_button("Send SMS", (right - 184, bottom - 184, right - 16, bottom - 16), PKG,
                                    "send_message_button", do_send)
        return [thread, compose, send_button]

    return page(phone, PKG, screen.arg, content)


def _new(phone: SimPhone, screen: Screen) -> Node:
    def do_send() -> None:
        to, text = screen.fields.get("to", "").strip(), screen.fields.get("message", "")
        if not to:
            return show_error(phone, "Add a recipient: a contact's name or a phone number.")
        if not text.strip():
            return show_error(phone, "The message is empty.")
        peer = phone.state.send_message(to, text)
        open_conversation(phone, peer, replace=True)

    def content(area):
        nodes = stack_fields(phone, screen, PKG, area, [("to", "To: name or phone number"), ("message", "Text message")])
        y = area[1] + w.MARGIN + 2 * (w.FIELD_H + 36)
        nodes.append(w.button("Send", (w.WIDTH - 400, y, w.WIDTH - w.MARGIN, y + 144), PKG, "send_message_button", do_send))
        return nodes

    return page(phone, PKG, "New conversation", content)


def build(phone: SimPhone, screen: Screen) -> Node:
    return {"list": _list, "conversation": _conversation, "new": _new}[screen.kind](phone, screen)


def build_dialog(phone: SimPhone, screen: Screen) -> Node:
    return error_dialog(phone, PKG, screen.dialog["message"] if screen.dialog else "")


APP = App("Messages", PKG, "list", build, build_dialog)

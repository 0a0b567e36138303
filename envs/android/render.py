"""Screenshots of the simulated phone, drawn with Pillow from the same view tree the agent reads:
status bar, app bar, list rows, buttons, text fields (with a cursor when focused), switches, radio
buttons, floating action buttons, dialogs over a dimmed screen, the keyboard when a text field is
focused, and the gesture bar. Dark theme in Settings darkens the screenshots too.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from agentgym.envs.android import widgets as w
from agentgym.envs.android.ui import Node

if TYPE_CHECKING:
    from agentgym.envs.android.phone import SimPhone

LIGHT = {"bg": (255, 255, 255), "fg": (28, 27, 31), "muted": (110, 110, 118), "bar": (243, 237, 247),
         "primary": (103, 80, 164), "on_primary": (255, 255, 255), "line": (225, 222, 230), "sel": (232, 222, 248),
         "kbd": (232, 234, 237), "key": (255, 255, 255)}
DARK = {"bg": (20, 18, 24), "fg": (230, 225, 229), "muted": (160, 156, 166), "bar": (43, 41, 48),
        "primary": (208, 188, 255), "on_primary": (56, 30, 114), "line": (60, 58, 66), "sel": (74, 68, 88),
        "kbd": (40, 42, 46), "key": (70, 72, 76)}
GLYPHS = {"Navigate up": "←", "Send SMS": "➤", "Add to favorites": "☆", "Remove from favorites": "★"}
_FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for path in _FONT_FILES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


class Painter:
    def __init__(self, scale: float, colors: dict):
        self.s, self.c = scale, colors
        self.img = Image.new("RGB", (round(w.WIDTH * scale), round(w.HEIGHT * scale)), colors["bg"])
        self.d = ImageDraw.Draw(self.img, "RGBA")

    def box(self, b) -> tuple[int, int, int, int]:
        return tuple(round(v * self.s) for v in b)  # type: ignore[return-value]

    def text(self, b, text: str, size: int, color, align: str = "left") -> None:
        left, top, right, bottom = self.box(b)
        f = font(max(8, round(size * self.s)))
        while text and self.d.textlength(text, font=f) > right - left and len(text) > 1:
            text = text[:-2] + "…"
        width = self.d.textlength(text, font=f)
        x = left + (right - left - width) / 2 if align == "center" else left
        self.d.text((x, (top + bottom) / 2), text, font=f, fill=color, anchor="lm")

    def node(self, n: Node) -> None:
        c, kind, rid = self.c, n.cls.rsplit(".", 1)[-1], n.resource_id.rsplit("/", 1)[-1]
        if not n.visible:
            return
        if kind == "ViewGroup" and rid == "toolbar":
            self.d.rectangle(self.box(n.bounds), fill=c["bar"])
        elif kind == "LinearLayout" and n.clickable or rid.endswith("_row"):
            if n.selected:
                self.d.rectangle(self.box(n.bounds), fill=c["sel"])
            l, t, r, b = n.bounds
            self.d.line(self.box((l + w.MARGIN, b - 1, r, b - 1)), fill=c["line"], width=1)
        elif kind == "TextView":
            if rid == "message_text":
                self.d.rounded_rectangle(self.box(n.bounds), radius=round(40 * self.s), fill=c["sel"])
                l, t, r, b = n.bounds
                self.text((l + 36, t, r - 24, b), n.text, 40, c["fg"])
            elif rid == "icon":  # launcher icon: a coloured circle with the initial, the name below
                l, t, r, b = n.bounds
                cx, size = (l + r) // 2, 150
                self.d.ellipse(self.box((cx - size // 2, t + 20, cx + size // 2, t + 20 + size)), fill=c["primary"])
                self.text((cx - size // 2, t + 20, cx + size // 2, t + 20 + size), n.text[:1], 70, c["on_primary"], "center")
                self.text((l, t + 190, r, b), n.text, 36, c["fg"], "center")
            else:
                size = 60 if rid in ("toolbar_title", "alertTitle", "date") else 34 if rid == "subtitle" else 44
                color = c["muted"] if rid == "subtitle" else c["fg"]
                self.text(n.bounds, n.text, size, color)
        elif kind == "Button":
            if n.bounds[1] < w.STATUS_H + w.APPBAR_H and n.bounds[3] <= w.STATUS_H + w.APPBAR_H:  # app bar action
                self.text(n.bounds, n.text, 44, c["primary"], "center")
            else:
                self.d.rounded_rectangle(self.box(n.bounds), radius=round(60 * self.s), fill=c["primary"])
                self.text(n.bounds, n.text, 44, c["on_primary"], "center")
        elif kind == "ImageButton":
            glyph = GLYPHS.get(n.content_desc, "×" if n.content_desc.startswith("Clear") else "+")
            if rid in ("floating_action_button", "fab", "start_chat_fab", "new_note_fab"):
                self.d.rounded_rectangle(self.box(n.bounds), radius=round(48 * self.s), fill=c["primary"])
                self.text(n.bounds, glyph, 80, c["on_primary"], "center")
            else:
                self.text(n.bounds, glyph, 64, c["primary"] if glyph in "➤★☆" else c["fg"], "center")
        elif kind == "EditText":
            l, t, r, b = n.bounds
            self.d.rounded_rectangle(self.box((l, t + 8, r, b - 8)), radius=round(12 * self.s),
                                     outline=c["primary"] if n.focused else c["muted"], width=3 if n.focused else 1)
            shown = n.text or n.hint
            self.text((l + 36, t, r - 24, b), shown + ("|" if n.focused else ""), 44, c["fg"] if n.text else c["muted"])
        elif kind == "Switch":
            l, t, r, b = self.box(n.bounds)
            self.d.rounded_rectangle((l, t, r, b), radius=(b - t) // 2, fill=c["primary"] if n.checked else c["line"])
            d = b - t - 8
            x = r - d - 4 if n.checked else l + 4
            self.d.ellipse((x, t + 4, x + d, t + 4 + d), fill=c["on_primary"] if n.checked else c["muted"])
        elif kind == "RadioButton":
            l, t, r, b = n.bounds
            self.d.ellipse(self.box((l, t + 30, l + 60, t + 90)), outline=c["primary"], width=3)
            if n.checked:
                self.d.ellipse(self.box((l + 15, t + 45, l + 45, t + 75)), fill=c["primary"])
            self.text((l + 100, t, r, b), n.text, 44, c["fg"])
        elif kind == "ImageView" and n.content_desc:
            self.text(n.bounds, n.content_desc[:1], 36, c["fg"], "center")

    def tree(self, root: Node) -> None:
        for n in root.walk():
            self.node(n)

    def keyboard(self) -> None:
        top = w.HEIGHT - w.NAVBAR_H - w.KEYBOARD_H
        self.d.rectangle(self.box((0, top, w.WIDTH, w.HEIGHT - w.NAVBAR_H)), fill=self.c["kbd"])
        rows = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
        key_w, key_h = 100, 150
        for i, row in enumerate(rows):
            x0 = (w.WIDTH - len(row) * (key_w + 8)) // 2
            y = top + 40 + i * (key_h + 24)
            for j, ch in enumerate(row):
                b = (x0 + j * (key_w + 8), y, x0 + j * (key_w + 8) + key_w, y + key_h)
                self.d.rounded_rectangle(self.box(b), radius=round(14 * self.s), fill=self.c["key"])
                self.text(b, ch, 52, self.c["fg"], "center")
        y = top + 40 + 3 * (key_h + 24)
        self.d.rounded_rectangle(self.box((270, y, 810, y + key_h)), radius=round(14 * self.s), fill=self.c["key"])


def render(phone: SimPhone, scale: float = 0.5) -> Image.Image:
    p = Painter(scale, DARK if phone.state.settings.dark_theme else LIGHT)
    window, dialog = phone.layers()
    p.tree(window)
    if phone.keyboard_shown and dialog is None:
        p.keyboard()
    if dialog is not None:
        p.d.rectangle(p.box((0, 0, w.WIDTH, w.HEIGHT)), fill=(0, 0, 0, 110))
        p.d.rounded_rectangle(p.box(dialog.bounds), radius=round(56 * scale), fill=p.c["bar"])
        p.tree(dialog)
        if phone.keyboard_shown:
            p.keyboard()
    p.d.rectangle(p.box((0, 0, w.WIDTH, w.STATUS_H)), fill=p.c["bg"])
    p.tree(w.status_bar(phone))
    pill = (w.WIDTH // 2 - 140, w.HEIGHT - w.NAVBAR_H // 2 - 6, w.WIDTH // 2 + 140, w.HEIGHT - w.NAVBAR_H // 2 + 6)
    p.d.rounded_rectangle(p.box(pill), radius=round(6 * scale), fill=p.c["fg"])
    return p.img


def render_png(phone: SimPhone, scale: float = 0.5) -> bytes:
    buf = io.BytesIO()
    render(phone, scale).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()

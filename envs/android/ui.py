"""The view hierarchy both phone backends share: a tree of `Node`s with the attributes of uiautomator's
XML dump (bounds, text, resource-id, content-desc, class, clickable, focused, scrollable, ...).

The simulated phone builds these trees from app state (with click/scroll callbacks attached); the adb
backend parses them from ``uiautomator dump``. Everything an agent sees and does goes through the same
three functions: `elements` (the numbered list of UI elements), `describe` (its compact text) and
`hit_test` (what a tap at a point lands on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Bounds = tuple[int, int, int, int]  # left, top, right, bottom in screen pixels
SCREEN_HEADER = "Screen elements:"  # heads the element list in every observation


@dataclass(eq=False)
class Node:
    cls: str = "android.widget.FrameLayout"
    text: str = ""
    resource_id: str = ""
    content_desc: str = ""
    hint: str = ""
    package: str = ""
    bounds: Bounds = (0, 0, 0, 0)
    clickable: bool = False
    long_clickable: bool = False
    focusable: bool = False
    focused: bool = False
    scrollable: bool = False
    checkable: bool = False
    checked: bool = False
    enabled: bool = True
    selected: bool = False
    password: bool = False
    children: list[Node] = field(default_factory=list)
    # Simulator only (never parsed from a dump): what a tap, a long press or a scroll of this node does.
    on_click: Callable[[], Any] | None = field(default=None, repr=False)
    on_long_click: Callable[[], Any] | None = field(default=None, repr=False)
    on_scroll: Callable[[int], Any] | None = field(default=None, repr=False)

    @property
    def editable(self) -> bool:
        return self.cls.endswith("EditText")

    @property
    def center(self) -> tuple[int, int]:
        left, top, right, bottom = self.bounds
        return (left + right) // 2, (top + bottom) // 2

    @property
    def visible(self) -> bool:
        left, top, right, bottom = self.bounds
        return right > left and bottom > top

    def contains(self, x: int, y: int) -> bool:
        left, top, right, bottom = self.bounds
        return left <= x < right and top <= y < bottom

    def walk(self) -> Iterator[Node]:
        """Pre-order: a parent before its children, earlier siblings before later ones (drawing order)."""
        yield self
        for child in self.children:
            yield from child.walk()


def _interesting(node: Node) -> bool:
    actionable = node.clickable or node.long_clickable or node.scrollable or node.checkable or node.editable
    return node.visible and (actionable or bool(node.text) or bool(node.content_desc))


def elements(root: Node) -> list[Node]:
    """The UI elements an agent can refer to by index: visible nodes that can be acted on or carry text."""
    return [n for n in root.walk() if _interesting(n)]


def _short_id(resource_id: str) -> str:
    return resource_id.rsplit(":id/", 1)[-1]


def _quote(text: str) -> str:
    """Text on one line, quoted; newlines and quotes escaped so a screen line is always one element."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def describe_element(i: int, node: Node) -> str:
    parts = [f"[{i}]", node.cls.rsplit(".", 1)[-1] or "View"]
    if node.text:
        parts.append(_quote(node.text))
    if node.content_desc:
        parts.append(f"desc={_quote(node.content_desc)}")
    if node.editable and not node.text and node.hint:
        parts.append(f"hint={_quote(node.hint)}")
    if node.resource_id:
        parts.append(f"id={_short_id(node.resource_id)}")
    flags = [name for name, on in (("clickable", node.clickable), ("long-clickable", node.long_clickable),
                                   ("scrollable", node.scrollable), ("editable", node.editable),
                                   ("focused", node.focused), ("selected", node.selected),
                                   ("disabled", not node.enabled)) if on]
    if node.checkable:
        flags.append("checked" if node.checked else "unchecked")
    if flags:
        parts.append("(" + ", ".join(flags) + ")")
    return " ".join(parts)


def describe(nodes: list[Node]) -> str:
    return "\n".join(describe_element(i, n) for i, n in enumerate(nodes))


def hit_test(root: Node, x: int, y: int, want: Callable[[Node], bool]) -> Node | None:
    """The topmost node under (x, y) for which `want` holds: the last one in drawing order."""
    found = None
    for node in root.walk():
        if node.visible and node.contains(x, y) and want(node):
            found = node
    return found


def is_tappable(node: Node) -> bool:
    return node.enabled and (node.clickable or node.checkable or node.editable)


def is_scrollable(node: Node) -> bool:
    return node.scrollable


# ---- uiautomator XML (what the simulator can dump, so a dump round-trips through the adb parser) ----

_XML_ATTRS = (("text", "text"), ("resource-id", "resource_id"), ("class", "cls"), ("package", "package"),
              ("content-desc", "content_desc"), ("checkable", "checkable"), ("checked", "checked"),
              ("clickable", "clickable"), ("enabled", "enabled"), ("focusable", "focusable"),
              ("focused", "focused"), ("scrollable", "scrollable"), ("long-clickable", "long_clickable"),
              ("password", "password"), ("selected", "selected"))


def to_xml(root: Node, rotation: int = 0) -> str:
    """The tree as a uiautomator ``window_dump.xml`` string."""
    from xml.sax.saxutils import quoteattr

    out = ["<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>", f'<hierarchy rotation="{rotation}">']

    def emit(node: Node, index: int, depth: int) -> None:
        attrs = [f'index="{index}"']
        for xml_name, attr in _XML_ATTRS:
            value = getattr(node, attr)
            attrs.append(f"{xml_name}={quoteattr(str(value).lower() if isinstance(value, bool) else value)}")
        if node.hint:
            attrs.append(f"hint={quoteattr(node.hint)}")
        left, top, right, bottom = node.bounds
        attrs.append(f'bounds="[{left},{top}][{right},{bottom}]"')
        pad = "  " * depth
        if node.children:
            out.append(f"{pad}<node {' '.join(attrs)}>")
            for i, child in enumerate(node.children):
                emit(child, i, depth + 1)
            out.append(f"{pad}</node>")
        else:
            out.append(f"{pad}<node {' '.join(attrs)} />")

    emit(root, 0, 1)
    out.append("</hierarchy>")
    return "\n".join(out)

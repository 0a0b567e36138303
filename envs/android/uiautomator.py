"""Parse ``uiautomator dump`` output (window_dump.xml) into the shared `Node` tree.

Real dumps are messier than the format suggests, and the parser accepts what devices actually print:
the ``UI hierchary dumped to: ...`` line uiautomator appends when dumping to /dev/tty, attributes a
vendor build leaves out (defaults apply), empty bounds ``[0,0][0,0]`` of off-screen nodes, non-ASCII
and entity-escaped text, nested scrollables. What it cannot make sense of raises `DumpError` with a
message that names the problem and where it is.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from agentgym.envs.android.ui import Node

_BOUNDS = re.compile(r"^\[(-?\d+),(-?\d+)\]\[(-?\d+),(-?\d+)\]$")
_BOOL_ATTRS = {"checkable": "checkable", "checked": "checked", "clickable": "clickable", "enabled": "enabled",
               "focusable": "focusable", "focused": "focused", "scrollable": "scrollable",
               "long-clickable": "long_clickable", "password": "password", "selected": "selected"}
_TEXT_ATTRS = {"text": "text", "resource-id": "resource_id", "class": "cls", "package": "package",
               "content-desc": "content_desc", "hint": "hint"}


class DumpError(ValueError):
    """A uiautomator dump that cannot be parsed; the message says what is wrong and where."""


def _strip_trailer(dump: str) -> str:
    """Drop what surrounds the XML: uiautomator's status line and any shell noise before the prolog."""
    start = dump.find("<?xml")
    if start < 0:
        start = dump.find("<hierarchy")
    end = dump.rfind("</hierarchy>")
    if start < 0 or end < 0:
        return dump.strip()
    return dump[start : end + len("</hierarchy>")]


def parse_bounds(value: str, where: str) -> tuple[int, int, int, int]:
    m = _BOUNDS.match(value.strip())
    if not m:
        raise DumpError(f"malformed uiautomator dump: {where} has bounds={value!r}; expected \"[left,top][right,bottom]\"")
    left, top, right, bottom = (int(g) for g in m.groups())
    return left, top, right, bottom


def _node(elem: ET.Element, where: str) -> Node:
    node = Node(cls="")
    for xml_name, attr in _TEXT_ATTRS.items():
        setattr(node, attr, elem.get(xml_name, ""))
    for xml_name, attr in _BOOL_ATTRS.items():
        raw = elem.get(xml_name)
        if raw is None:
            continue  # older or vendor builds omit some flags: keep the default
        if raw.lower() not in ("true", "false"):
            raise DumpError(f"malformed uiautomator dump: {where} has {xml_name}={raw!r}; expected true or false")
        setattr(node, attr, raw.lower() == "true")
    bounds = elem.get("bounds")
    node.bounds = parse_bounds(bounds, where) if bounds is not None else (0, 0, 0, 0)
    for i, child in enumerate(elem):
        if child.tag != "node":
            raise DumpError(f"malformed uiautomator dump: unexpected <{child.tag}> element inside {where}")
        node.children.append(_node(child, f"{where}/node[{i}]"))
    return node


def parse_dump(dump: str | bytes) -> Node:
    """The view hierarchy of a uiautomator XML dump. Several top-level nodes (one per window) become the
    children of one root spanning them."""
    if isinstance(dump, bytes):
        try:
            dump = dump.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DumpError(f"malformed uiautomator dump: not UTF-8 (byte 0x{dump[e.start]:02x} at offset {e.start})") from None
    text = _strip_trailer(dump)
    if not text:
        raise DumpError("malformed uiautomator dump: the dump is empty (is the screen locked or the device asleep?)")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        line, col = e.position
        raise DumpError(f"malformed uiautomator dump: not well-formed XML at line {line}, column {col} "
                        f"({str(e).split(':')[0]})") from None
    if root.tag != "hierarchy":
        raise DumpError(f"malformed uiautomator dump: the root element is <{root.tag}>, expected <hierarchy>")
    windows = []
    for i, child in enumerate(root):
        if child.tag != "node":
            raise DumpError(f"malformed uiautomator dump: unexpected <{child.tag}> element inside <hierarchy>")
        windows.append(_node(child, f"hierarchy/node[{i}]"))
    if not windows:
        raise DumpError("malformed uiautomator dump: <hierarchy> has no <node> (an empty window list)")
    if len(windows) == 1:
        return windows[0]
    right = max(w.bounds[2] for w in windows)
    bottom = max(w.bounds[3] for w in windows)
    return Node(cls="hierarchy", bounds=(0, 0, right, bottom), children=windows)

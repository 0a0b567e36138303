"""Text from models, environments and files made safe to print on a terminal.

A terminal obeys control characters: ESC starts CSI/OSC sequences (clear the screen, move the cursor, set
the window title, OSC 8 hyperlinks, even clipboard writes), C1 controls (U+0080-U+009F) are their 8-bit
forms, and BEL, backspace and CR overwrite or hide what was printed before. Bidirectional overrides
reorder what the eye reads. `printable` shows every one of them as a visible escape (``\\x1b``, ``\\r``,
``\\u202e``) and keeps newlines and tabs, so a model's text is shown as written, never executed.
"""

from __future__ import annotations

_KEEP = {"\n", "\t"}
_BIDI = [*range(0x200E, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_NAMED = {"\r": "\\r", "\b": "\\b", "\a": "\\a", "\f": "\\f", "\v": "\\v", "\x00": "\\0"}
_TABLE = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *_BIDI, 0x2028, 0x2029, 0xFEFF]
    if chr(code) not in _KEEP
}


def printable(text: object) -> str:
    """`text` (any object, via str) with every terminal control character rendered visibly."""
    return str(text).translate(_TABLE)

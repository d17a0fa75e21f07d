"""Text from outside on its way to a terminal: control characters shown, never obeyed.

A board, a file name or a label may carry escape sequences (``\\x1b[2J`` clears the screen, ``\\x1b]0;``
sets the window title, a bidi override reorders what follows). ``printable`` replaces every control and
format character with a visible escape, so what harlite prints is what it says.
"""

from __future__ import annotations

import unicodedata

_HIDDEN = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with control and format characters as ``\\xNN`` / ``\\uNNNN`` escapes, cut to ``limit``."""
    shown = "".join(c if unicodedata.category(c) not in _HIDDEN or c == " " else _escape(c) for c in text)
    return shown if limit is None or len(shown) <= limit else shown[: limit - 3] + "..."


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

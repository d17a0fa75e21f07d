"""C text from Python values, safe by construction: numbers that C reads back exactly, string literals
that no text can end, comments that no text can close."""

from __future__ import annotations

import math
from typing import Any

from harlite.errors import BundleError


def c_int(v: Any) -> str:
    v = int(v)
    return f"({v})" if v < 0 else str(v)


def c_float(v: Any) -> str:
    v = float(v)
    if not math.isfinite(v):
        raise BundleError(f"the manifest holds a non-finite number ({v}): rebuild the bundle.")
    s = f"{v:.9g}"
    return (s if any(c in s for c in ".e") else s + ".0") + "f"


def c_string(s: str) -> str:
    """A C string literal of ``s``'s UTF-8 bytes: printable ASCII as is, anything else (quotes, backslashes,
    '?' of trigraphs, control and non-ASCII bytes) as an escape, so no text can end the literal."""
    out = []
    for byte in str(s).encode("utf-8"):
        char = chr(byte)
        out.append(char if 0x20 <= byte < 0x7F and char not in '"\\?' else f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_comment(text: str) -> str:
    """``text`` safe inside a /* */ comment on one line: no line breaks, no comment end."""
    return "".join(c if c.isprintable() else " " for c in str(text)).replace("*/", "* /")


def c_list(items: Any) -> str:
    return "{ " + ", ".join(items) + " }"

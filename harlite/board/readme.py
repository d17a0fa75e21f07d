"""What every export's README says of its model (labels, samples, window, the C engine's figures, the API),
escaped for Markdown, and the library's name."""

from __future__ import annotations

import html
import re

from harlite.board.sources import render
from harlite.bundle.loader import Bundle
from harlite.io.files import MARKER


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown: HTML escaped, Markdown's punctuation behind backslashes."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~>])", r"\\\1", html.escape(text, quote=True))


def library_name(bundle: Bundle) -> str:
    """``harlite_`` and the bundle folder's name, letters, digits and underscores only (an Arduino library
    name, a CMake project name)."""
    return "harlite_" + (re.sub(r"[^A-Za-z0-9_]", "_", bundle.root.name)[:40] or "model")


def model_section(bundle: Bundle, fmt: str) -> str:
    """The README's sections on the model, its API and its files."""
    m = bundle.manifest
    entry, engine = m["artifacts"]["int8"], m.get("engine", {})
    raw = m["frontend"].get("raw_channels") or ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    return render(
        "README_model.md",
        BUNDLE_LINE=markdown_text(
            f"{MARKER} from the bundle {bundle.root.name} ({entry['file']}, sha256 "
            f"{entry['sha256']}, {entry['bytes']} bytes)."
        ),  # fmt: skip
        LABELS=", ".join(f"{i}: {markdown_text(label)}" for i, label in enumerate(m["labels"])),
        RAW=", ".join(markdown_text(r) for r in raw),
        RATE_HZ=f"{float(m['rate_hz']):g}",
        WINDOW=str(int(m["window"])),
        HOP=str(int(m["hop"])),
        MACS=f"{int(engine.get('macs', 0)):,}",
        WEIGHT_BYTES=f"{int(engine.get('weight_bytes', 0)):,}",
        SCRATCH_BYTES=f"{int(engine.get('scratch_bytes', 0)):,}",
        FORMAT=fmt,
    )

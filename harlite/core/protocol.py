"""The protocol a model is built for: its activity labels and its front end (raw sensors, rate, window,
hop, channels). Decided once per build from the data, stored in the manifest, read by every stage.

UCI HAR's values appear here only as the embedded HAPT default (``HAPT``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from harlite.core.frontend import RAW_UNITS, FrontEndSpec
from harlite.errors import DataError

UNLABELLED = -1
# UCI HAR's six activities, in its class order, and its official test subjects (the HAPT default).
UCI_LABELS: tuple[str, ...] = (
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
)
UCI_TEST_SUBJECTS: tuple[str, ...] = ("2", "4", "9", "10", "12", "13", "18", "20", "24")
# A label goes into C string literals and the board's serial lines: printable, no separators, short.
LABEL_MAX_BYTES = 31
MAX_LABELS = 64
_BAD_LABEL = re.compile(r"[\x00-\x1f\x7f,=\"\\]")
# Unicode control, format (a right-to-left override), separator, surrogate, private and unassigned characters
_BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


@dataclass(frozen=True)
class Protocol:
    """Labels (class order) and the front end that turns raw samples into the model's windows."""

    labels: tuple[str, ...]
    frontend: FrontEndSpec = FrontEndSpec()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(check_label(name) for name in self.labels))
        if not 2 <= len(self.labels) <= MAX_LABELS or len(set(self.labels)) != len(self.labels):
            raise DataError(f"a model needs 2 to {MAX_LABELS} distinct labels, got {list(self.labels)}.")

    @property
    def rate_hz(self) -> float:
        return self.frontend.rate_hz

    @property
    def window(self) -> int:
        return self.frontend.window

    @property
    def hop(self) -> int:
        return self.frontend.hop

    @property
    def raw_channels(self) -> tuple[str, ...]:
        return self.frontend.raw_channels

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's protocol fields: labels, rate_hz, window, hop, raw_channels (with units), frontend."""
        raw = [{"name": name, "unit": RAW_UNITS[name.split("_")[0]]} for name in self.raw_channels]
        return {"labels": list(self.labels), "rate_hz": self.rate_hz, "window": self.window, "hop": self.hop,
                "raw_channels": raw, "frontend": self.frontend.to_dict()}  # fmt: skip

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Protocol:
        """The protocol a manifest (or a run folder's normalization.json) records."""
        return cls(tuple(manifest["labels"]), FrontEndSpec.from_dict(manifest["frontend"]))


def check_label(name: Any) -> str:
    """``name`` stripped, if it can be a label (C string literals and serial lines carry it); else DataError."""
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"label {name!r} is not a name: labels are non-empty text.")
    name = unicodedata.normalize("NFC", name.strip())
    if (_BAD_LABEL.search(name) or any(unicodedata.category(c) in _BAD_CATEGORIES for c in name)
            or len(name.encode("utf-8")) > LABEL_MAX_BYTES):  # fmt: skip
        raise DataError(
            f"label {name!r} cannot be used: labels are at most {LABEL_MAX_BYTES} bytes of text without "
            "control characters, commas, '=', quotes or backslashes (the board prints them); rename it "
            "(a 'merge' in dataset.json can do that)."
        )
    return name


# The embedded default: UCI HAR's labels, a phone's accelerometer and gyroscope at 50 Hz, 128-sample windows.
HAPT = Protocol(UCI_LABELS)

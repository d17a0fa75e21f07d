"""WISDM v1.1 raw text (``WISDM_ar_v1.1_raw.txt``): ``user,activity,timestamp,x,y,z;`` records.

20 Hz, acceleration in m/s^2 with gravity (the phone's own axes), timestamps in nanoseconds of the phone's
uptime. The file is read as it is, quirks included: a record ends with ``;`` (sometimes several on one
line, sometimes none at the end of a line), some records are cut short or have a field missing, some
timestamps are 0, some repeat. Those records are left out and counted by reason; ``read_wisdm`` returns
one ``Columns`` piece per stretch of a user's records whose clock rises steadily (a jump or a step back
starts a new piece), each with the user as its subject.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from harlite.data.columns import Columns, intern, pieces
from harlite.data.layout import ACC, Units
from harlite.data.tables import MAX_GZIP_RATIO, MAX_LINE_BYTES, MAX_TEXT_BYTES, TableError
from harlite.io.limits import open_bounded

UNITS = Units(acc="m/s^2")
RECORD = re.compile(r"\s*(?P<user>[^,;]+?)\s*,\s*(?P<activity>[^,;]*?)\s*,\s*(?P<time>[-+]?\d+)\s*,"
                    r"\s*(?P<x>[^,;]+?)\s*,\s*(?P<y>[^,;]+?)\s*,\s*(?P<z>[^,;]+?)\s*,?\s*")  # fmt: skip
BLOCK = 1 << 16
# A clock jump of more than this many median intervals starts a new piece (a new session).
JUMP = 5.0


def read_wisdm(path: str | Path, units: Units = UNITS) -> tuple[list[tuple[str, Columns]], dict[str, int]]:
    """(subject, columns) pieces of a WISDM raw file, and the records left out, by reason."""
    path = Path(path)
    users: list[str] = []
    activities: list[np.ndarray] = []
    times: list[np.ndarray] = []
    values: list[np.ndarray] = []
    lines: list[np.ndarray] = []
    dropped = {"malformed": 0, "zero timestamp": 0, "not a number": 0, "repeated timestamp": 0}
    vocabulary: dict[str, int] = {}
    block: list[tuple[int, re.Match[str]]] = []

    def flush() -> None:
        if not block:
            return
        t = np.array([int(m["time"]) for _, m in block], np.int64)
        try:
            xyz = np.array([[m["x"], m["y"], m["z"]] for _, m in block], np.float64)
        except ValueError:
            xyz = np.array([[_number(m["x"]), _number(m["y"]), _number(m["z"])] for _, m in block], np.float64)
        good = np.isfinite(xyz).all(axis=1) & (t != 0)
        dropped["zero timestamp"] += int((t == 0).sum())
        dropped["not a number"] += int((~np.isfinite(xyz).all(axis=1) & (t != 0)).sum())
        kept = [item for item, ok in zip(block, good) if ok]
        users.extend(m["user"] for _, m in kept)
        activities.append(intern(np.array([m["activity"] for _, m in kept], dtype=str), vocabulary))
        times.append(t[good])
        values.append(xyz[good] * units.scales(ACC))
        lines.append(np.array([n for n, _ in kept], np.int32))
        block.clear()

    with open_bounded(path, MAX_TEXT_BYTES, MAX_GZIP_RATIO, error=TableError) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)
        number = 0
        while line := text.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(line) > MAX_LINE_BYTES:
                raise TableError(
                    f"{path}, line {number} is longer than {MAX_LINE_BYTES} characters: not WISDM raw text."
                )
            for part in line.split(";"):
                if not part.strip():
                    continue
                match = RECORD.fullmatch(part.strip())
                if match is None or not match["activity"]:
                    dropped["malformed"] += 1
                    continue
                block.append((number, match))
                if len(block) == BLOCK:
                    flush()
        flush()
    if not times or not sum(len(t) for t in times):
        raise TableError(f"{path} holds no WISDM record (user,activity,timestamp,x,y,z;): is it WISDM v1.1 raw text?")
    t, xyz, numbers = np.concatenate(times), np.concatenate(values), np.concatenate(lines)
    labels = np.concatenate(activities)
    found = []
    start = 0
    for end in [*np.flatnonzero(np.array(users[1:]) != np.array(users[:-1])) + 1, len(users)]:
        user = users[start]
        keep = np.ones(end - start, bool)
        keep[1:] = t[start + 1 : end] != t[start : end - 1]  # a repeated timestamp: the record twice
        dropped["repeated timestamp"] += int((~keep).sum())
        whole = Columns(path, (t[start:end][keep] - t[start]) * 1e-9, float(t[start]) * 1e-9,
                        xyz[start:end][keep].astype(np.float32), labels[start:end][keep], tuple(vocabulary),
                        numbers[start:end][keep], ACC)  # fmt: skip
        cut = pieces(whole, JUMP)
        dropped["alone between clock jumps"] = (
            dropped.get("alone between clock jumps", 0) + len(whole) - sum(map(len, cut))
        )
        found += [(user, piece) for piece in cut]
        start = end
    return [(user, replace(piece, classes=tuple(vocabulary))) for user, piece in found], {
        k: v for k, v in dropped.items() if v
    }


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")

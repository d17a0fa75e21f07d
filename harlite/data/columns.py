"""A recording's columns as read from one file or from one file per sensor, before any checks.

``read_columns(path, layout)`` reads a table through a ``Layout``: the time in seconds (exact for a
nanosecond clock: the integer ticks are offset before they become float64), the sensor values in the
file's units with the mapping's signs, the labels interned, the line numbers. ``join_sensors`` puts the
files of one recording folder (one per sensor, each on its own clock) onto the first file's clock by
linear interpolation over the span all of them cover. ``pieces`` cuts columns where the clock jumps or
goes back, for sources that chain sessions in one file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harlite.core.protocol import UNLABELLED
from harlite.data.layout import AXES, TIME_UNITS, Layout, Units, resolve
from harlite.data.tables import TableError, open_table
from harlite.errors import DataError


@dataclass(frozen=True)
class Columns:
    """Rows of one recording: ``time`` (n,) float64 seconds from ``origin`` (seconds, the first row's
    clock reading, for aligning files), ``values`` (n, k) float64 in the file's units, ``labels`` (n,)
    int16 into ``classes`` or None, ``lines`` (n,) the file's line numbers, ``raw_channels`` names."""

    path: Path
    time: np.ndarray
    origin: float
    values: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...]
    lines: np.ndarray
    raw_channels: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.time)

    def take(self, keep: np.ndarray | slice) -> Columns:
        labels = None if self.labels is None else self.labels[keep]
        time = self.time[keep]
        shift = float(time[0]) if len(time) else 0.0
        return replace(self, time=time - shift, origin=self.origin + shift, values=self.values[keep], labels=labels,
                       lines=self.lines[keep])  # fmt: skip


def read_columns(path: str | Path, layout: Layout = Layout(), units: Units = Units(),
                 sensors: tuple[str, ...] | None = None) -> Columns:  # fmt: skip
    """The columns of one table, converted to g and rad/s by ``units`` (float32, as recordings keep them);
    only ``sensors``' axes when the layout spreads the sensors over files."""
    path = Path(path)
    with open_table(path, layout.style) as table:
        where = resolve(table, layout, sensors)
        numeric = ([where.time] if where.time is not None else []) + list(where.axes)
        text = [where.label] if where.label is not None else []
        times, values, lines, names, exact = [], [], [], [], where.time is not None
        vocabulary: dict[str, int] = {}
        scales = units.scales(tuple(AXES[AXES.index(a)] for a in where.names)) * np.asarray(where.signs)
        for rows in table.blocks(numeric, text, where.time):
            lines.append(rows.lines)
            offset = 1 if where.time is not None else 0
            with np.errstate(over="ignore"):  # beyond float32 is a spike: clipped with a warning later
                values.append((rows.values[:, offset:] * scales).astype(np.float32))
            if where.time is not None:
                exact = exact and rows.integers is not None
                times.append(rows.integers if exact else rows.values[:, 0])
            if text:
                names.append(intern(rows.text[0], vocabulary))
        notes = tuple(table.notes)
    if not lines:
        raise TableError(f"{path}: no samples after the header line.")
    line_numbers = np.concatenate(lines)
    if where.time is None:
        time, origin = np.arange(len(line_numbers)) / float(layout.rate_hz), 0.0
    else:
        unit = TIME_UNITS[layout.time_unit]
        if exact and all(t.dtype == np.int64 for t in times):
            ticks = np.concatenate(times)
            time, origin = (ticks - ticks[0]).astype(np.float64) * unit, float(ticks[0]) * unit
        else:
            raw = np.concatenate([t.astype(np.float64) for t in times])
            time, origin = (raw - raw[0]) * unit, float(raw[0]) * unit
    labels = np.concatenate(names) if text else None
    columns = Columns(path, time, origin, np.concatenate(values), labels, tuple(vocabulary), line_numbers,
                      where.raw_channels, notes)  # fmt: skip
    return _finite(columns, padding=layout.given)


def header_channels(path: str | Path, layout: Layout = Layout()) -> tuple[str, ...]:
    """The raw sensors of a recording (acc, or acc and gyro) from its header alone (a folder of one file per
    sensor: from the layout), as ``read_columns`` would find them."""
    if layout.sensors:
        return tuple(a for a in AXES if a.split("_")[0] in layout.sensors)
    with open_table(Path(path), layout.style) as table:
        return resolve(table, layout).raw_channels


def _finite(columns: Columns, padding: bool) -> Columns:
    """With ``padding`` (someone else's format), rows padded with NaN at the end (phyphox pads shorter
    columns) are left out with a note; any other value that is not a finite number is an error naming its line."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(columns.time) | np.isnan(columns.values).any(axis=1)
    if not bad.any():
        return columns
    first = int(np.argmax(bad))
    if padding and bad[first:].all() and first >= 2:
        kept = columns.take(slice(0, first))
        return replace(kept, time=kept.time + (kept.origin - columns.origin), origin=columns.origin,
                       notes=columns.notes + (f"{columns.path}: {len(columns) - first} row(s) of NaN padding at the end left out",))  # fmt: skip
    raise TableError(f"{columns.path}, line {columns.lines[first]}: a value is not a finite number.")


def intern(names: np.ndarray, vocabulary: dict[str, int]) -> np.ndarray:
    """int16 indices of label strings into ``vocabulary`` (extended in order of appearance); '' is unlabelled.
    Names are NFC-normalized, so that one label typed two ways is one class."""
    import unicodedata

    unique, first, inverse = np.unique(np.char.strip(names), return_index=True, return_inverse=True)
    index = np.empty(len(unique), dtype=np.int16)
    for k in np.argsort(first):
        name = unicodedata.normalize("NFC", str(unique[k]))
        if name:
            if len(vocabulary) >= 32767 and name not in vocabulary:
                raise DataError("more than 32,767 distinct labels: the label column holds something else.")
            vocabulary.setdefault(name, len(vocabulary))
        index[k] = vocabulary[name] if name else UNLABELLED
    return index[inverse.reshape(-1)]


def join_sensors(folder: str | Path, layout: Layout, units: Units = Units()) -> Columns:
    """One recording from a folder of per-sensor files (``layout.sensors``): each file read on its own
    clock; files listed together for one sensor add up (linear acceleration + gravity); everything
    interpolated onto the first acceleration file's clock over the span all files cover."""
    folder = Path(folder)
    parts: dict[str, list[Columns]] = {}
    for sensor, files in layout.sensors.items():
        parts[sensor] = [read_columns(folder / name, layout, units, (sensor,)) for name in files]
    base = parts["acc"][0]
    start = max(c.origin for cs in parts.values() for c in cs)
    end = min(c.origin + c.time[-1] for cs in parts.values() for c in cs)
    if not end > start:
        raise DataError(f"{folder}: the sensor files do not overlap in time ({', '.join(f for fs in layout.sensors.values() for f in fs)}); "
                        "they must come from one recording.")  # fmt: skip
    clock = base.origin + base.time
    keep = (clock >= start) & (clock <= end)
    grid = clock[keep]
    columns = []
    for sensor in ("acc", "gyro"):
        if sensor not in parts:
            continue
        total = 0.0
        for c in parts[sensor]:
            _check_rising(c)
            total = total + np.stack(
                [
                    np.interp(grid, c.origin + c.time, c.values[:, k].astype(np.float64))
                    for k in range(c.values.shape[1])
                ],
                axis=1,
            )
        columns.append(total)
    dropped = int(len(clock) - keep.sum())
    notes = base.notes + (
        (f"{folder}: {dropped} samples outside the span every sensor covers left out",) if dropped else ()
    )
    raw = tuple(a for a in AXES if a.split("_")[0] in parts)
    joined = base.take(keep)
    values = np.concatenate(columns, axis=1).astype(np.float32)
    return replace(joined, path=folder, values=values, raw_channels=raw, notes=notes)


def _check_rising(c: Columns) -> None:
    back = np.flatnonzero(np.diff(c.time) <= 0)
    if len(back):
        i = int(back[0])
        raise DataError(f"{c.path}, line {c.lines[i + 1]}: time goes back or repeats ({c.time[i + 1]:.6g} s after "
                        f"{c.time[i]:.6g} s); a file per sensor must hold one recording in time order.")  # fmt: skip


def pieces(columns: Columns, jump: float) -> list[Columns]:
    """``columns`` cut wherever the clock goes back, repeats, or jumps by more than ``jump`` times the
    median interval (a new session); pieces of fewer than two rows are left out."""
    dt = np.diff(columns.time)
    rising = dt[dt > 0]
    step = float(np.median(rising)) if len(rising) else 0.0
    cuts = np.flatnonzero((dt <= 0) | (dt > jump * step)) + 1
    bounds = [0, *cuts.tolist(), len(columns)]
    return [columns.take(slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= 2]

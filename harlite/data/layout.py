"""Where a recording's numbers are in a CSV file of someone else's making: the column mapping.

A ``Layout`` says which column holds the time (and its unit, or a fixed rate when there is none), each
acceleration and angular-rate axis (a leading ``-`` negates it), and the label; how the text is written
(delimiter, decimal mark, encoding; detected when not given); the units; whether gravity is in the
acceleration; and, for loggers that write one file per sensor, which file holds which sensor (joined on
their clocks). ``dataset.json`` states one for a whole dataset (docs/data.md, "Other people's files");
the default is harlite's own format. ``columns_of(table, layout)`` resolves it against a file's header;
a header it does not fit is an error that shows the header and the mapping that would fit it
(``guess_layout``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from harlite.core.frontend import ACC, GYRO
from harlite.data.tables import Style, Table, TableError
from harlite.errors import DataError
from harlite.io.schema import Array, MapOf, Number, OneOf, Record, Text

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
GRAVITY = ("included", "removed")
AXES = ACC + GYRO
DEFAULT_COLUMNS = {"time": "time_s", **{a: a for a in AXES}, "label": "label"}
COLUMN_KEYS = ("time", *AXES, "label")
SENSOR_FILES = ("acc", "gyro")
UNITS = {"acc": {"g": 1.0, "m/s^2": 1 / 9.80665}, "gyro": {"rad/s": 1.0, "deg/s": np.pi / 180}}
# dataset.json keys of the layout, in the schema language.
_NAME = Text(max_bytes=256, hint="a column name of the file's header (a leading '-' negates the values)")
_FILE = Text(max_bytes=255, pattern=r"[^/\\]+", hint="a file name inside the recording's folder")
LAYOUT_FIELDS = {
    "columns": MapOf(Text(choices=COLUMN_KEYS), _NAME, max_len=len(COLUMN_KEYS)),
    "time_unit": Text(choices=tuple(TIME_UNITS)),
    "rate_hz": Number(gt=0, le=100_000),
    "csv": Record({
        "delimiter": Text(choices=(",", ";", "\t", "tab")),
        "decimal": Text(choices=(".", ",")),
        "encoding": Text(max_bytes=32, pattern=r"[A-Za-z0-9_.-]+", hint="a text encoding such as 'utf-8' or 'cp1252'"),
    }, optional=frozenset({"delimiter", "decimal", "encoding"}), closed=True),
    "gravity": Text(choices=GRAVITY),
    "sensors": MapOf(Text(choices=SENSOR_FILES), OneOf((_FILE, Array(_FILE, min_len=1, max_len=4)),
                     "a file name, or a list of files whose values add up (linear acceleration + gravity)"),
                     required=("acc",), max_len=2),
}  # fmt: skip


@dataclass(frozen=True)
class Units:
    """Units of a recording's columns (a dataset's ``dataset.json`` may say m/s^2 or deg/s)."""

    acc: str = "g"
    gyro: str = "rad/s"

    def __post_init__(self) -> None:
        for sensor in ("acc", "gyro"):
            if getattr(self, sensor) not in UNITS[sensor]:
                raise DataError(
                    f"unknown {sensor} unit {getattr(self, sensor)!r}: use one of {', '.join(UNITS[sensor])}."
                )

    def scales(self, raw_channels: tuple[str, ...]) -> np.ndarray:
        """Per raw channel, the factor to g or rad/s."""
        return np.array([UNITS[c.split("_")[0]][getattr(self, c.split("_")[0])] for c in raw_channels], np.float64)


@dataclass(frozen=True)
class Layout:
    """A column mapping: ``columns`` maps time, acc_x..gyro_z and label to header names (``-name``
    negates); ``time_unit`` of the time column, or ``rate_hz`` without one; ``style`` of the text;
    ``gravity`` in the acceleration or removed; ``sensors``: files of one recording folder (acc, gyro)."""

    columns: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    time_unit: str = "s"
    rate_hz: float | None = None
    style: Style = Style()
    gravity: str = "included"
    sensors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    given: bool = False  # the columns are someone's mapping (its gyro columns required), not harlite's default

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> Layout:
        """The layout of a validated dataset.json object (keys absent: harlite's format)."""
        given = "columns" in raw
        columns = dict(DEFAULT_COLUMNS) if "columns" not in raw else {k: str(v) for k, v in raw["columns"].items()}
        if given and "time" not in columns and "rate_hz" not in raw:
            columns["time"] = DEFAULT_COLUMNS["time"]
        csv = raw.get("csv", {})
        style = Style(
            {"tab": "\t"}.get(csv.get("delimiter"), csv.get("delimiter")), csv.get("decimal"), csv.get("encoding")
        )
        sensors = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in raw.get("sensors", {}).items()}
        layout = cls(columns, raw.get("time_unit", "s"), raw.get("rate_hz"), style, raw.get("gravity", "included"),
                     sensors, given)  # fmt: skip
        layout.check()
        return layout

    def check(self) -> None:
        """Cross-field rules the schema cannot say: all three axes of a sensor, a clock, no clash."""
        for sensor in (ACC, GYRO):
            named = [a for a in sensor if a in self.columns]
            if sensor == ACC and len(named) != 3 or 0 < len(named) < 3:
                raise DataError(f'"columns" must name all of {", ".join(sensor)}' + (" or none" if sensor == GYRO else "")
                                + f" (it names {', '.join(named) or 'none'}).")  # fmt: skip
        if self.rate_hz is not None and self.given and "time" in self.columns:
            raise DataError('give "rate_hz" (no time column) or a "time" column, not both.')
        if self.style.decimal == "," and self.style.delimiter == ",":
            raise DataError('"csv": a decimal comma needs another delimiter (";" or tab).')
        if self.sensors and "gyro" in self.sensors and not any(a in self.columns for a in GYRO):
            raise DataError('"sensors" names a gyro file, so "columns" must name gyro_x, gyro_y, gyro_z in it.')

    @property
    def has_gyro(self) -> bool:
        return all(a in self.columns for a in GYRO)

    def to_config(self) -> dict[str, Any]:
        """The dataset.json keys of this layout (what a user would write)."""
        out: dict[str, Any] = {"columns": dict(self.columns)}
        if self.rate_hz is not None:
            out["rate_hz"] = self.rate_hz
            out["columns"].pop("time", None)
        elif self.time_unit != "s":
            out["time_unit"] = self.time_unit
        csv = {k: v for k, v, usual in (("delimiter", self.style.delimiter, ","), ("decimal", self.style.decimal, "."))
               if v not in (None, usual)}  # fmt: skip
        if csv:
            out["csv"] = {k: ("tab" if v == "\t" else v) for k, v in csv.items()}
        if self.gravity != "included":
            out["gravity"] = self.gravity
        return out


@dataclass(frozen=True)
class Resolved:
    """A layout resolved against one file's header: column indices and signs."""

    time: int | None
    axes: tuple[int, ...]  # acc (and gyro) columns, in AXES order
    names: tuple[str, ...]  # their raw channel names
    signs: tuple[float, ...]
    label: int | None
    raw_channels: tuple[str, ...]


def resolve(table: Table, layout: Layout, sensors: tuple[str, ...] | None = None) -> Resolved:
    """The columns of ``layout`` in ``table``'s header (only ``sensors``' axes when the layout spreads the
    sensors over files); a missing one is an error that shows the header found and a mapping that fits."""
    wanted = [a for a in AXES if a in layout.columns and (sensors is None or a.split("_")[0] in sensors)]
    optional_label = "label" in layout.columns and layout.columns["label"] == DEFAULT_COLUMNS["label"]
    optional_gyro = not layout.given
    missing, found = [], {}
    for key in (
        ["time"] * ("time" in layout.columns and layout.rate_hz is None)
        + wanted
        + ["label"] * ("label" in layout.columns)
    ):
        name = layout.columns[key].lstrip("-") if key != "time" else layout.columns[key]
        index = table.index(name)
        if index is None and not ((key == "label" and optional_label) or (key in GYRO and optional_gyro)):
            missing.append(key)
        found[key] = index
    gyro = [a for a in GYRO if found.get(a) is not None]
    if not missing and optional_gyro and 0 < len(gyro) < 3:
        missing = [a for a in GYRO if found.get(a) is None]
    if missing and not layout.given and set(missing) <= set(GYRO):
        raise TableError(f"{table.path}, line {table.header_line}: missing column {', '.join(missing)}; the "
                         "gyroscope columns gyro_x, gyro_y, gyro_z come all three or none.")  # fmt: skip
    if missing:
        raise TableError(missing_message(table, layout, missing))
    axes = [a for a in wanted if found.get(a) is not None]
    raw = tuple(axes) if sensors is not None else (ACC + GYRO if set(GYRO) <= set(axes) else ACC)
    axes = [a for a in axes if a in raw]
    signs = tuple(-1.0 if layout.columns[a].startswith("-") else 1.0 for a in axes)
    return Resolved(found.get("time"), tuple(found[a] for a in axes), tuple(axes), signs, found.get("label"), raw)


def missing_message(table: Table, layout: Layout, missing: list[str]) -> str:
    """Which columns are missing, the header found, and the dataset.json mapping that would fit it."""
    header = table.style.delimiter.join(f'"{h}"' if table.style.delimiter in h else h for h in table.header) \
        if table.style.delimiter else ",".join(table.header)  # fmt: skip
    shown = header if len(header) <= 200 else header[:197] + "..."
    names = ", ".join(layout.columns.get(k, k) for k in missing)
    text = f"{table.path}, line {table.header_line}: no column {names}; the header is {shown!r}"
    guess = guess_layout(table)
    if guess is not None:
        source = detect_source(table.header)
        hint = f" (or: harlite data import {table.path} --format {source})" if source else ""
        units = guessed_units(guess)
        config = {**guess.to_config(), **({"units": units} if units else {})}
        text += f". Map the columns in the dataset's dataset.json: {json.dumps(config, ensure_ascii=False)}{hint}"
    else:
        text += (
            ". Name the columns time_s,acc_x,acc_y,acc_z[,gyro_x,gyro_y,gyro_z][,label], or map yours in "
            'dataset.json: "columns": {"time": ..., "acc_x": ..., ...} (docs/data.md)'
        )
    return text + "."


# ---------------------------------------------------------------------------------------------------
# Guessing a layout from a header (for error messages and `harlite data import --format csv`)

_TIME = re.compile(r"^(time|timestamp|t|seconds_elapsed|time_s|elapsed|zeit)\b|^time\s*\(|^t\s*\(")
_UNIT = re.compile(r"\((?P<unit>[^)]*)\)|\[(?P<unit2>[^\]]*)\]")
_ACC = re.compile(r"acc|accel|beschleunigung")
_GYRO = re.compile(r"gyr|rotation|angular|rate|drehrate")
_AXIS = re.compile(r"(?:^|[^a-z])(?P<axis>[xyz])(?:$|[^a-z])")


def _axis(name: str) -> str | None:
    found = _AXIS.findall(name)
    return found[-1] if len(found) == 1 or (found and len(set(found)) == 1) else None


def _unit_of(name: str) -> str | None:
    match = _UNIT.search(name)
    unit = (match.group("unit") or match.group("unit2") or "").replace(" ", "").lower() if match else ""
    return {"m/s^2": "m/s^2", "m/s²": "m/s^2", "m/s2": "m/s^2", "ms^-2": "m/s^2", "g": "g", "rad/s": "rad/s",
            "deg/s": "deg/s", "°/s": "deg/s", "dps": "deg/s", "s": "s", "ms": "ms", "us": "us", "µs": "us", "ns": "ns"}.get(unit)  # fmt: skip


def guess_layout(table: Table) -> Layout | None:
    """A layout that fits ``table``'s header: a time column, x/y/z of acceleration (and angular rate),
    a label column, units from names like ``(m/s^2)``; None when no three acceleration axes are found."""
    names = table.header
    low = [h.lower() for h in names]
    columns: dict[str, str] = {}
    for i, h in enumerate(low):
        if "time" not in columns and _TIME.search(h):
            columns["time"] = names[i]
        elif h in ("label", "activity", "class", "aktivität"):
            columns.setdefault("label", names[i])
    for sensor, pattern in (("acc", _ACC), ("gyro", _GYRO)):
        for i, h in enumerate(low):
            axis = _axis(h)
            if axis and pattern.search(h) and not re.search(r"abs|norm|magnitude|linear|uncal", h):
                columns.setdefault(f"{sensor}_{axis}", names[i])
        if not all(f"{sensor}_{a}" in columns for a in "xyz"):
            for a in "xyz":
                columns.pop(f"{sensor}_{a}", None)
    if not all(a in columns for a in ACC):
        bare = {h: names[i] for i, h in enumerate(low) if h in ("x", "y", "z")}  # one sensor, bare axes
        if len(bare) == 3:
            columns.update({f"acc_{a}": bare[a] for a in "xyz"})
        linear = {_axis(h): names[i] for i, h in enumerate(low) if "linear" in h and _axis(h)}
        if len(linear) == 3 and not all(a in columns for a in ACC):
            columns.update({f"acc_{a}": linear[a] for a in "xyz"})
    if not all(a in columns for a in ACC):
        return None
    time_unit = _unit_of(columns.get("time", "")) or "s"
    if columns.get("time", "").lower() == "time" and "seconds_elapsed" in low:
        columns["time"], time_unit = names[low.index("seconds_elapsed")], "s"
    gravity = "removed" if "linear" in columns["acc_x"].lower() else "included"
    return replace(Layout(columns, time_unit, style=table.style, gravity=gravity, given=True))


def guessed_units(layout: Layout) -> dict[str, str]:
    """Units named in the mapped columns' headers, such as ``Acceleration x (m/s^2)``."""
    units = {}
    for sensor in ("acc", "gyro"):
        unit = _unit_of(layout.columns.get(f"{sensor}_x", ""))
        if unit in (("g", "m/s^2") if sensor == "acc" else ("rad/s", "deg/s")):
            units[sensor] = unit
    return units


def detect_source(header: list[str]) -> str | None:
    """The app that writes this header: phyphox or sensor-logger (None: unknown)."""
    low = [h.lower() for h in header]
    if low and low[0] == "time (s)" and any(re.search(r"(acceleration|gyroscope) [xyz] \(", h) for h in low):
        return "phyphox"
    if low[:2] == ["time", "seconds_elapsed"]:
        return "sensor-logger"
    return None

"""``harlite data import``: recordings from phone loggers and public datasets, written as a harlite dataset.

``import_source(src, fmt, out)`` reads ``src`` (a file, an export folder or a .zip of one) in the format
``fmt`` and writes ``out/<subject>/<name>.csv`` in harlite's CSV format (acceleration in g with gravity,
angular rate in rad/s, the label column), one file per stretch of steady clock:

- ``phyphox``: a phyphox CSV export ("Acceleration with g", or a custom experiment with acceleration and
  gyroscope columns); any of its separators and decimal marks. "Linear Acceleration" has no gravity:
  refused unless ``gravity="removed"`` accepts it (then recorded in ``out/dataset.json``);
- ``sensor-logger``: a Sensor Logger folder: ``TotalAcceleration.csv``, or ``Accelerometer.csv`` plus
  ``Gravity.csv``, and ``Gyroscope.csv``, each on its own clock, joined onto the acceleration's; iOS
  axes (``Metadata.csv``) turned into Android's, which are UCI HAR's;
- ``wisdm``: WISDM v1.1 raw text; one folder per user, its quirks counted (harlite.data.wisdm);
- ``csv``: any CSV whose header names a time column and x, y, z of acceleration (and angular rate), or
  the ``mapping`` given (dataset.json's column keys).

``label`` labels every sample of a source that has no labels; ``subject`` names the folder (WISDM's
users name their own). Existing files are never overwritten without ``force``.
"""

from __future__ import annotations

import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harlite.core.protocol import check_label
from harlite.data.columns import Columns, join_sensors, pieces, read_columns
from harlite.data.layout import GYRO, Layout, Units, guess_layout, guessed_units
from harlite.data.recordings import RecordingError, recording, write_csv
from harlite.data.tables import open_table
from harlite.errors import DataError
from harlite.io.files import is_within
from harlite.io.limits import MiB, zip_member

FORMATS = ("phyphox", "sensor-logger", "wisdm", "csv")
DEFAULT_SUBJECT = "subject1"
# A clock jump of more than this many median intervals splits a recording (a paused logger).
JUMP = 5.0
MAX_ZIP_MEMBER, MAX_ZIP_RATIO, MAX_ZIP_FILES = 1 << 30, 200, 10_000
SENSOR_LOGGER_ACC = (("TotalAcceleration.csv",), ("Accelerometer.csv", "Gravity.csv"))


@dataclass
class ImportResult:
    """What an import wrote, and what it left out and why."""

    source: str
    format: str
    out: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # rows (or files) by reason
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "format": self.format, "out": str(self.out), "files": self.files,
                "samples": sum(f["samples"] for f in self.files), "left_out": self.left_out, "notes": self.notes}  # fmt: skip


def import_source(src: str | Path, fmt: str, out: str | Path, label: str | None = None, subject: str | None = None,
                  gravity: str | None = None, units: Units | None = None, mapping: dict[str, Any] | None = None,
                  force: bool = False) -> ImportResult:  # fmt: skip
    """Import ``src`` in format ``fmt`` into the dataset folder ``out`` (see the module's docstring)."""
    from harlite.data.datasets import check_subject

    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}.")
    src, out = Path(src), Path(out)
    if not src.exists():
        raise DataError(f"{src} does not exist.")
    if not (src.is_dir() or stat.S_ISREG(src.stat().st_mode)):
        raise DataError(f"{src} is not a regular file or a folder: pass a file, an export folder or a .zip.")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; --out names the dataset folder to write.")
    if is_within(out, src) or is_within(src, out):
        raise DataError(f"--out {out} and the source {src} overlap: write the dataset into another folder.")
    label = None if label is None else check_label(label)
    subject = check_subject(subject or DEFAULT_SUBJECT)
    result = ImportResult(str(src), fmt, out)
    with _unpacked(src) as source:
        try:
            if fmt == "wisdm":
                found = _wisdm(source, result)
            else:
                reader = {"phyphox": _phyphox, "sensor-logger": _sensor_logger, "csv": _csv}[fmt]
                found = [(subject, _stem(piece.path), piece, layout)
                         for piece, layout in reader(source, result, gravity, units, mapping)]  # fmt: skip
            _write(found, out, label, result, force)
        except DataError as e:  # name the zip, not the folder it was unpacked into
            raise DataError(str(e).replace(str(source), str(src))) from None
    result.notes = [note.replace(str(source), str(src)) for note in result.notes]
    for f in result.files:
        f["warnings"] = [w.replace(str(source), str(src)) for w in f["warnings"]]
    return result


# ---------------------------------------------------------------------------------------------------
# Sources


def _phyphox(src: Path, result: ImportResult, gravity: str | None, units: Units | None,
             mapping: dict[str, Any] | None) -> list[tuple[Columns, Layout]]:  # fmt: skip
    """Every phyphox CSV of ``src`` (a file or an export folder, ``meta/`` left out)."""
    files = (
        [src] if src.is_file() else sorted(p for p in src.rglob("*.csv") if "meta" not in p.relative_to(src).parts[:-1])
    )
    if not files:
        raise DataError(f"{src} holds no phyphox CSV export (Raw Data.csv): export the experiment as CSV.")
    found = []
    for path in files:
        with open_table(path) as table:
            layout = guess_layout(table)
            if layout is None or "time" not in layout.columns:
                header = ",".join(table.header)[:160]
                if any("gyroscope" in h.lower() for h in table.header):
                    raise DataError(f"{path} holds angular rate without acceleration (header {header!r}): record "
                                    "phyphox's 'Acceleration with g' (a custom experiment with both sensors for a gyroscope).")  # fmt: skip
                raise DataError(f"{path}: the header {header!r} is not a phyphox export of acceleration "
                                "('Time (s)','Acceleration x (m/s^2)',...): try --format csv.")  # fmt: skip
        layout = _accept_gravity(path, layout, gravity)
        unit = Units(**{"acc": "m/s^2", "gyro": "rad/s", **guessed_units(layout), **_given(units)})
        found += [(piece, layout) for piece in _pieces(read_columns(path, layout, unit), result)]
    return found


def _sensor_logger(src: Path, result: ImportResult, gravity: str | None, units: Units | None,
                   mapping: dict[str, Any] | None) -> list[tuple[Columns, Layout]]:  # fmt: skip
    """A Sensor Logger export folder, or a folder of them."""
    folders = (
        [src]
        if _has_acc(src)
        else sorted(p for p in src.iterdir() if p.is_dir() and _has_acc(p))
        if src.is_dir()
        else []
    )
    if not folders:
        raise DataError(f"{src} is not a Sensor Logger export: it needs TotalAcceleration.csv, or Accelerometer.csv "
                        "with Gravity.csv (export the recording as a zip of CSV files, with those sensors on).")  # fmt: skip
    found = []
    for folder in folders:
        platform, standard = _sensor_logger_metadata(folder, result)
        sign = "-" if platform == "ios" and not standard else ""
        acc = next((files for files in SENSOR_LOGGER_ACC if all((folder / f).is_file() for f in files)), None)
        removed = acc is None
        if removed:  # Accelerometer.csv alone: gravity-free
            acc = ("Accelerometer.csv",)
        sensors = {"acc": acc, **({"gyro": ("Gyroscope.csv",)} if (folder / "Gyroscope.csv").is_file() else {})}
        columns = {"time": "time", **{f"acc_{a}": f"{sign}{a}" for a in "xyz"}, **{f"gyro_{a}": a for a in "xyz"}}
        if "gyro" not in sensors:
            columns = {k: v for k, v in columns.items() if k not in GYRO}
        layout = Layout(columns, "ns", sensors=sensors, gravity="removed" if removed else "included", given=True)
        layout = _accept_gravity(folder / acc[0], layout, gravity)
        unit = Units(**{"acc": "m/s^2", "gyro": "rad/s", **_given(units)})
        found += [(piece, layout) for piece in _pieces(join_sensors(folder, layout, unit), result)]
    return found


def _has_acc(folder: Path) -> bool:
    return folder.is_dir() and (
        (folder / "TotalAcceleration.csv").is_file() or (folder / "Accelerometer.csv").is_file()
    )


def _sensor_logger_metadata(folder: Path, result: ImportResult) -> tuple[str, bool]:
    """(platform, units and frames standardised) from Metadata.csv; Android's when it is missing."""
    path = next((folder / n for n in ("Metadata.csv", "metadata.csv") if (folder / n).is_file()), None)
    if path is None:
        result.notes.append(f"{folder}: no Metadata.csv; took the axes to be Android's")
        return "android", True
    with open_table(path) as table:
        wanted = [table.index("platform"), table.index("standardisation")]
        rows = next(table.blocks([], [c for c in wanted if c is not None]), None)
    values = iter([str(t[0]).strip().lower() for t in rows.text] if rows is not None else [])
    platform = next(values, "android") if wanted[0] is not None else "android"
    standard = next(values, "false") == "true" if wanted[1] is not None else False
    if platform not in ("ios", "android"):
        raise DataError(f"{path}: platform {platform!r} is neither ios nor android.")
    return platform, standard


def _wisdm(src: Path, result: ImportResult) -> list[tuple[str, str, Columns, Layout]]:
    from harlite.data.wisdm import read_wisdm

    path = src if src.is_file() else next(iter(sorted(src.rglob("*raw*.txt"))), None)
    if path is None:
        raise DataError(f"{src} holds no WISDM raw text (WISDM_ar_v1.1_raw.txt).")
    found, dropped = read_wisdm(path)
    for reason, n in dropped.items():
        result.left_out[f"records: {reason}"] = n
    return [(user, f"wisdm_{user}", piece, Layout()) for user, piece in found]


def _csv(src: Path, result: ImportResult, gravity: str | None, units: Units | None,
         mapping: dict[str, Any] | None) -> list[tuple[Columns, Layout]]:  # fmt: skip
    """Any CSV (a file, or every .csv/.csv.gz of a folder), through ``mapping`` or the header's names."""
    files = (
        [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.name.lower().endswith((".csv", ".csv.gz")))
    )
    found = []
    for path in files:
        if mapping is not None:
            layout = Layout.from_config(mapping)
        else:
            with open_table(path) as table:
                layout = guess_layout(table)
                if layout is None:
                    raise DataError(f"{path}: no time column and x, y, z of acceleration in the header "
                                    f"{','.join(table.header)[:160]!r}; give --mapping FILE.json "
                                    '(dataset.json\'s keys, e.g. {"columns": {"time": ..., "acc_x": ...}}).')  # fmt: skip
        layout = _accept_gravity(path, layout, gravity)
        unit = Units(**{**guessed_units(layout), **_given(units)})
        found += [(piece, layout) for piece in _pieces(read_columns(path, layout, unit), result)]
    return found


def _given(units: Units | None) -> dict[str, str]:
    return {} if units is None else {"acc": units.acc, "gyro": units.gyro}


def _accept_gravity(path: Path, layout: Layout, gravity: str | None) -> Layout:
    """The layout with the gravity the user accepts; acceleration without gravity needs --gravity removed."""
    if layout.gravity == "removed" and gravity != "removed":
        raise DataError(f"{path} holds acceleration without gravity (linear acceleration); harlite's models "
                        "expect it with gravity, as boards measure it. Record it with gravity (phyphox: "
                        "'Acceleration with g'; Sensor Logger: TotalAcceleration, or Accelerometer with Gravity on), "
                        "or import it as it is with --gravity removed (a model of linear acceleration).")  # fmt: skip
    return replace(layout, gravity=gravity or layout.gravity)


def _pieces(columns: Columns, result: ImportResult) -> list[Columns]:
    cut = pieces(columns, JUMP)
    short = len(columns) - sum(map(len, cut))
    if short:
        result.left_out["rows alone between clock jumps"] = (
            result.left_out.get("rows alone between clock jumps", 0) + short
        )
    return cut


# ---------------------------------------------------------------------------------------------------
# Writing


def _write(found: list[tuple[str, str, Columns, Layout]], out: Path, label: str | None, result: ImportResult,
           force: bool) -> None:  # fmt: skip
    """Each piece checked (steady rate, short holes filled, units, gravity) and written as one recording."""
    gravity = {layout.gravity for *_, layout in found}
    if len(gravity) > 1:
        raise DataError("the source mixes acceleration with and without gravity: import them into two datasets.")
    counts: dict[tuple[str, str], int] = {}
    planned = []
    for subject, stem, piece, layout in found:
        counts[(subject, stem)] = counts.get((subject, stem), 0) + 1
        planned.append((subject, stem, counts[(subject, stem)], piece, layout))
    targets = [out / subject / (f"{stem}.csv" if counts[(subject, stem)] == 1 else f"{stem}-{k}.csv")
               for subject, stem, k, _, _ in planned]  # fmt: skip
    taken = [t for t in targets if t.exists()]
    if taken and not force:
        raise DataError(f"{taken[0]} exists ({len(taken)} of the {len(targets)} files to write do); pass --force to "
                        "replace them, or import into another --out.")  # fmt: skip
    for target, (subject, _, _, piece, layout) in zip(targets, planned):
        if label is not None and piece.labels is not None:
            raise DataError(f"{piece.path} carries its own labels: leave out --label.")
        if label is not None:
            piece = replace(piece, labels=np.zeros(len(piece), np.int16), classes=(label,))
        try:
            rec = recording(piece, layout=Layout(gravity=layout.gravity), fill_holes=True)
        except RecordingError as e:
            result.notes.append(f"left out {piece.path} rows {piece.lines[0]}-{piece.lines[-1]}: {e}")
            result.left_out["rows of unusable stretches"] = result.left_out.get("rows of unusable stretches", 0) + len(
                piece
            )
            continue
        path = write_csv(rec, target, force=True)
        result.files.append({"path": str(path), "subject": subject, "samples": len(rec), "rate_hz": round(rec.rate, 3),
                             "sensors": list(rec.raw_channels), "labels": sorted(set(rec.label_names) - {""}),
                             "warnings": list(rec.warnings)})  # fmt: skip
    if not result.files:
        raise DataError(f"nothing to import from {result.source}: {'; '.join(result.notes[:3]) or 'no samples'}.")
    if gravity == {"removed"}:
        _record_gravity(out)


def _stem(path: Path) -> str:
    """A file name for a source file: its stem, or its folder's name for phyphox's 'Raw Data.csv'."""
    name = path.name if path.is_dir() else re.sub(r"(\.csv|\.txt)?(\.gz|\.zip)?$", "", path.name, flags=re.I)
    if name.lower() in ("raw data", "raw_data") and path.parent.name:
        name = path.parent.name
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "recording"


def _record_gravity(out: Path) -> None:
    """``"gravity": "removed"`` in out/dataset.json (its other keys kept)."""
    from harlite.data.datasets import DATASET_FILE, read_config_json
    from harlite.io.files import write_json

    path = out / DATASET_FILE
    config = read_config_json(path) if path.exists() else {}
    if config.get("gravity", "removed") != "removed":
        raise DataError(f"{path} says gravity is {config['gravity']}; import linear acceleration into another dataset.")
    write_json(path, {**config, "gravity": "removed"})


class _unpacked:
    """``src`` as a folder: a .zip unpacked (bounded, names made safe) into a private temporary folder."""

    def __init__(self, src: Path) -> None:
        self.src, self.tmp = src, None

    def __enter__(self) -> Path:
        if not (self.src.is_file() and self.src.name.lower().endswith(".zip")):
            return self.src
        self.tmp = tempfile.TemporaryDirectory(prefix="harlite-import-")
        root = Path(self.tmp.name) / _stem(self.src)
        try:
            archive = zipfile.ZipFile(self.src)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{self.src} is not a readable zip ({e}).") from None
        with archive:
            members = [
                i for i in archive.infolist() if not i.is_dir() and i.filename.lower().endswith((".csv", ".txt"))
            ]
            if len(members) > MAX_ZIP_FILES:
                raise DataError(f"{self.src} holds {len(members)} files, more than {MAX_ZIP_FILES}.")
            for info in members:
                parts = [
                    re.sub(r"[^\w. -]+", "_", p).strip(". ") or "_"
                    for p in info.filename.split("/")
                    if p not in ("", ".", "..")
                ]
                if not parts or parts[0] == "__MACOSX":
                    continue
                target = root.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with (
                    zip_member(archive, info, MAX_ZIP_MEMBER, MAX_ZIP_RATIO, str(self.src)) as stream,
                    open(target, "wb") as f,
                ):
                    while chunk := stream.read(MiB):
                        f.write(chunk)
        inner = [p for p in root.iterdir()] if root.is_dir() else []
        return inner[0] if len(inner) == 1 and inner[0].is_dir() else root

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()

"""A dataset of a user's own recordings: a folder of CSV files, one subject per first-level folder.

```
my_data/
  dataset.json          optional: units, label order, labels to merge or ignore, labels that are "other"
                        (none of the activities: the model learns them as the class "other", which every
                        runtime reports as unknown), the column mapping (docs/data.md)
  alice/walk1.csv       subject "alice"
  alice/morning/run.csv.gz
  bob/session.csv       subject "bob"
  loose.csv             a recording at the top level is a group of its own ("loose.csv")
```
Every recording has the same sensor columns (acc, or acc and gyro); labels are any names (NFC-normalized,
so "café" typed two ways is one label). ``dataset.json`` is read through the bounded readers and checked
by ``DATASET_SCHEMA`` (the schema language of manifests); with ``"sensors"`` a recording is a folder of
one file per sensor.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harlite.core.protocol import MAX_LABELS, check_label
from harlite.core.unknown import OTHER_LABEL
from harlite.data.layout import LAYOUT_FIELDS, UNITS, Layout, Units
from harlite.data.recordings import RATE_TOLERANCE, Recording, RecordingError, read_csv
from harlite.data.tables import open_table
from harlite.errors import DataError, HarliteError
from harlite.io.limits import MiB, read_bounded
from harlite.io.schema import Array, Invalid, MapOf, Record, Text, parse_json

DATASET_FILE = "dataset.json"
SUFFIXES = (".csv", ".csv.gz")
MAX_RECORDINGS = 100_000
MAX_CONFIG_BYTES = 1 * MiB
_NAME = Text(max_bytes=256, hint="a label name (text without control characters)")
DATASET_SCHEMA = Record({
    "units": Record({sensor: Text(choices=tuple(UNITS[sensor])) for sensor in UNITS},
                    optional=frozenset(UNITS), closed=True),  # fmt: skip
    "labels": Array(_NAME, min_len=1, max_len=MAX_LABELS, unique=True),
    "merge": MapOf(_NAME, _NAME, max_len=4096),
    "ignore": Array(_NAME, max_len=4096),
    "other": Array(_NAME, max_len=4096),
    **LAYOUT_FIELDS,
}, optional=frozenset({"units", "labels", "merge", "ignore", "other", *LAYOUT_FIELDS}), closed=True)  # fmt: skip


def read_config_json(path: Path) -> dict[str, Any]:
    """``dataset.json`` parsed (at most MAX_CONFIG_BYTES of strict JSON, a regular file) and checked
    against DATASET_SCHEMA; a one-line DataError naming the field otherwise."""
    data = read_bounded(path, MAX_CONFIG_BYTES, error=DataError)
    raw = parse_json(data, str(path), DataError, hint="see docs/data.md for its keys")
    try:
        DATASET_SCHEMA.check(raw, "", raw)
    except Invalid as e:
        raise DataError(f"{path}: {e}; see docs/data.md.") from None
    return raw


@dataclass(frozen=True)
class DatasetConfig:
    """What ``dataset.json`` says: units, the label order, labels renamed (``merge``, chains followed to
    their end) or dropped (``ignore``), and the column mapping (``layout``)."""

    units: Units = Units()
    labels: tuple[str, ...] | None = None
    merge: dict[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    layout: Layout = Layout()

    @classmethod
    def read(cls, root: Path) -> DatasetConfig:
        path = root / DATASET_FILE
        if not os.path.lexists(path):
            return cls()
        raw = read_config_json(path)
        try:
            labels = None if "labels" not in raw else tuple(check_label(x) for x in raw["labels"])
            if labels is not None and len(set(labels)) != len(labels):
                raise DataError('"labels" holds a name twice (after normalizing its letters).')
            merge = {normal_label(k): check_label(v) for k, v in raw.get("merge", {}).items()}
            other = {normal_label(x): OTHER_LABEL for x in raw.get("other", [])}  # the class reported unknown
            merge = resolve_merge({**merge, **other})
            ignore = tuple(normal_label(x) for x in raw.get("ignore", []))
            return cls(Units(**raw.get("units", {})), labels, merge, ignore, Layout.from_config(raw))
        except HarliteError as e:
            raise DataError(f"{path}: {e}") from None


def normal_label(name: str) -> str:
    """A name as labels are compared: stripped, NFC (a name to merge or ignore need not be printable)."""
    return unicodedata.normalize("NFC", name.strip())


def resolve_merge(merge: dict[str, str]) -> dict[str, str]:
    """``merge`` with chains followed to their end (a -> b -> c gives a -> c and b -> c); a cycle is an error."""
    resolved = {}
    for start, name in merge.items():
        path = [start]
        while name in merge and name != path[-1]:
            if name in path:
                raise DataError(f'"merge" has a cycle: {" -> ".join(path + [name])}; a label must end as one name.')
            path.append(name)
            name = merge[name]
        resolved[start] = name
    return resolved


def check_subject(name: str) -> str:
    """A subject is a folder of the dataset: a label's rules (``check_label``), and no '/', '\\' or leading '.'."""
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or name != name.strip()
    ):
        raise HarliteError(f"subject {name!r} cannot be used: it names a folder; no '/', '\\', leading '.' or "
                           "outer spaces.")  # fmt: skip
    try:
        return check_label(name)
    except HarliteError as e:
        raise HarliteError(str(e).replace("label", "subject", 1)) from None


@dataclass
class Dataset:
    """A dataset's recordings (at their own rates), its labels and raw sensors, and what reading noticed."""

    root: Path
    recordings: list[Recording]
    labels: tuple[str, ...]
    raw_channels: tuple[str, ...]
    warnings: list[str]
    gravity: str = "included"

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.recordings if r.subject is not None}, key=natural_key)

    @property
    def rates(self) -> list[float]:
        return sorted({round(r.rate, 3) for r in self.recordings})

    def summary(self) -> dict[str, Any]:
        """Recordings, subjects, rates, hours and samples per label."""
        seconds = np.zeros(len(self.labels))
        for r in self.recordings:
            if r.labels is not None:
                seconds += np.bincount(r.labels[r.labels >= 0], minlength=len(self.labels)) / r.rate
        return {
            "source": str(self.root),
            "recordings": len(self.recordings),
            "subjects": self.subjects,
            "rates_hz": self.rates,
            "hours": round(sum(r.duration_s for r in self.recordings) / 3600, 4),
            "sensors": list(self.raw_channels),
            "gravity": self.gravity,
            "labels": list(self.labels),
            "labelled_seconds": {name: round(float(t), 1) for name, t in zip(self.labels, seconds)},
        }


def natural_key(name: str) -> tuple[int, int | str]:
    """Sort key that puts "2" before "10" (HAPT's subjects) and names after numbers."""
    return (0, int(name)) if name.isdigit() else (1, name)


@dataclass
class Found:
    """A dataset folder's recordings (files, or folders of per-sensor files) and what was passed over."""

    recordings: list[Path]
    skipped: list[Path]  # files that are not recordings (another suffix, not a regular file)

    def note(self, root: Path) -> list[str]:
        if not self.skipped:
            return []
        shown = ", ".join(str(p.relative_to(root)) for p in self.skipped[:3])
        return [f"{root}: skipped {len(self.skipped)} file(s) that are not recordings (not a regular .csv or "
                f".csv.gz file), e.g. {shown}"]  # fmt: skip


def find_recordings(root: Path, layout: Layout = Layout(), exclude: tuple[Path, ...] = ()) -> Found:
    """The dataset's recordings, found recursively in a stable order: CSV files, or (``layout.sensors``)
    folders holding the acceleration file; hidden files and folders, ``dataset.json`` and the folders in
    ``exclude`` (a build's own output) are passed over, other files counted as skipped."""
    excluded = [p.resolve() for p in exclude]
    recordings, skipped = [], []
    acc_file = layout.sensors["acc"][0] if layout.sensors else None
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() not in excluded)
        if acc_file is not None and acc_file in files:
            recordings.append(here)
            continue
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or (here == root and name == DATASET_FILE) or acc_file is not None:
                continue
            regular = _regular(path)
            if name.lower().endswith(SUFFIXES) and regular:
                recordings.append(path)
            else:
                skipped.append(path)
        if len(recordings) > MAX_RECORDINGS:
            raise DataError(f"{root} holds more than {MAX_RECORDINGS} recordings; point --data at a smaller folder.")
    return Found(sorted(recordings), skipped)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def dataset_files(root: Path, exclude: tuple[Path, ...] = ()) -> tuple[DatasetConfig, Found]:
    """A dataset folder's ``dataset.json`` and recordings; a DataError when it is no folder or holds none."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: --data takes a folder of CSV recordings (see docs/data.md).")
    config = DatasetConfig.read(root)
    found = find_recordings(root, config.layout, exclude)
    if not found.recordings:
        what = (
            f"folders with {config.layout.sensors['acc'][0]}" if config.layout.sensors else ".csv or .csv.gz recordings"
        )
        raise DataError(f"{root} holds no {what}; a dataset is a folder of CSV recordings, one subfolder per subject "
                        f"(see docs/data.md){'; ' + found.note(root)[0] if found.skipped else ''}.")  # fmt: skip
    return config, found


def subject_and_source(root: Path, path: Path) -> tuple[str, str]:
    """The group a recording belongs to (its first folder under ``root``, or itself at the top) and its name."""
    relative = path.relative_to(root)
    return (relative.parts[0] if len(relative.parts) > 1 else relative.name), str(relative)


def one_sensor_set(root: Path, sensors: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The raw sensors every recording of a dataset has (``sensors``: source -> its raw channels); recordings
    with and without a gyroscope are an error naming one of each."""
    if len(set(sensors.values())) > 1:
        with_gyro = next(source for source, raw in sensors.items() if len(raw) == 6)
        without = next(source for source, raw in sensors.items() if len(raw) == 3)
        raise DataError(f"{root}: recordings differ in their sensors ({with_gyro} has a gyroscope, {without} "
                        "does not); give every recording the same columns, or drop the gyro columns.")  # fmt: skip
    return next(iter(sensors.values()))


def dataset_labels(root: Path, config: DatasetConfig, names: list[str]) -> tuple[str, ...]:
    """The dataset's labels from the label names its recordings hold (in order found): dataset.json's
    ``labels`` when given (each must be used), otherwise every name after ``merge`` and ``ignore``, sorted."""
    found = [config.merge.get(name, name) for name in names]
    found = [check_label(name) for name in dict.fromkeys(found) if name not in config.ignore]
    labels = config.labels if config.labels is not None else tuple(sorted(found))
    unused = [name for name in labels if name not in found]
    if config.labels is not None and unused:
        raise DataError(f"{root / DATASET_FILE} lists label {', '.join(unused)}, which no recording uses; "
                        "remove it from \"labels\" or record it.")  # fmt: skip
    return tuple(labels)


def check_label_count(root: Path, labels: tuple[str, ...], min_labels: int) -> None:
    if len(labels) < min_labels:
        raise DataError(f"{root}: only {len(labels)} label ({', '.join(labels) or 'none'}) in the recordings' "
                        "label column; a classifier needs at least two activities to train.")  # fmt: skip


def load_dataset(root: str | Path, min_labels: int = 2, exclude: tuple[Path, ...] = ()) -> Dataset:
    """Read every recording of the dataset folder ``root`` (at its own rate), with one label vocabulary.

    The labels are dataset.json's ``labels`` when given (in that order), otherwise every name found,
    sorted. A dataset without recordings, with mixed sensor sets, or with fewer than ``min_labels``
    labels (2 to train; a test folder or a replay may have one, or none) is an error; so is a label in
    dataset.json that no recording uses. (Training reads a folder one recording at a time instead:
    ``harlite.data.sources``.)
    """
    root = Path(root)
    config, found = dataset_files(root, exclude)
    recordings, warnings = [], found.note(root)
    for path in found.recordings:
        rec = read_csv(path, units=config.units, layout=config.layout)
        subject, source = subject_and_source(root, path)
        recordings.append(replace(rec, subject=subject, source=source))
        warnings += rec.warnings
    raw = one_sensor_set(root, {r.source: r.raw_channels for r in recordings})
    labels = dataset_labels(root, config, [name for r in recordings for name in r.classes])
    try:
        recordings = [r.with_classes(labels, config.merge, config.ignore) for r in recordings]
    except RecordingError as e:
        raise DataError(f"{e} (labels from {root / DATASET_FILE})") from None
    check_label_count(root, labels, min_labels)
    return Dataset(root, recordings, labels, raw, warnings, config.layout.gravity)


def check_recorded_protocol(out: Path, sensors: str, rate_hz: float) -> None:
    """Refuse to add recordings of ``sensors`` ("acc" or "acc,gyro") at ``rate_hz`` to a dataset folder
    whose recordings have other sensors or another rate (within RATE_TOLERANCE). Their heads are read
    through the bounded readers; what is not a regular file or not a recording is passed over."""
    if not out.is_dir():
        return
    for path in find_recordings(out).recordings:
        found = recording_head(path)
        if found is None:
            continue
        theirs, rate = found
        if theirs != sensors or (rate and abs(rate / rate_hz - 1) > RATE_TOLERANCE):
            raise DataError(f"{path} holds {theirs} at {rate:g} Hz but the board samples {sensors} at {rate_hz:g} Hz: "
                            "capture into another --out, or flash the firmware of this dataset's model.")  # fmt: skip


def recording_head(path: Path, rows: int = 50) -> tuple[str, float] | None:
    """Sensors and rate from a recording's header and first ``rows`` rows; None if it does not read as one."""
    try:
        with open_table(path) as table:
            time_column = table.index("time_s")
            if table.index("acc_x") is None or time_column is None:
                return None
            sensors = "acc,gyro" if table.index("gyro_x") is not None else "acc"
            head = next(table.blocks([time_column], limit=rows), None)
    except (DataError, OSError):
        return None
    times = head.values[:, 0] if head is not None else np.zeros(0)
    span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    return sensors, (len(times) - 1) / span if span > 0 else 0.0

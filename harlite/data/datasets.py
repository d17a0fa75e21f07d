"""A dataset of a user's own recordings: a folder of CSV files, one subject per first-level folder.

```
my_data/
  dataset.json          optional: units, label order, labels to merge or ignore (docs/data.md)
  alice/walk1.csv       subject "alice"
  alice/morning/run.csv.gz
  bob/session.csv       subject "bob"
  loose.csv             a recording at the top level is a group of its own ("loose.csv")
```
Every recording has the same sensor columns (acc, or acc and gyro); labels are any names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harlite.core.protocol import check_label
from harlite.data.recordings import Recording, RecordingError, Units, read_csv
from harlite.errors import DataError

DATASET_FILE = "dataset.json"
SUFFIXES = (".csv", ".csv.gz")
MAX_RECORDINGS = 100_000
_KEYS = {"units", "labels", "merge", "ignore"}


@dataclass(frozen=True)
class DatasetConfig:
    """What ``dataset.json`` says: units, the label order, labels renamed (``merge``) or dropped (``ignore``)."""

    units: Units = Units()
    labels: tuple[str, ...] | None = None
    merge: dict[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()

    @classmethod
    def read(cls, root: Path) -> DatasetConfig:
        path = root / DATASET_FILE
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{path} is not valid JSON ({e}); see docs/data.md for its format.") from None
        if not isinstance(raw, dict) or set(raw) - _KEYS:
            extra = sorted(set(raw) - _KEYS) if isinstance(raw, dict) else "not an object"
            raise DataError(f"{path}: unknown keys {extra}; it may hold {', '.join(sorted(_KEYS))}.")
        units = raw.get("units", {})
        if not isinstance(units, dict) or set(units) - {"acc", "gyro"}:
            raise DataError(f'{path}: "units" must be like {{"acc": "g", "gyro": "rad/s"}}.')
        labels, merge, ignore = raw.get("labels"), raw.get("merge", {}), raw.get("ignore", [])
        if labels is not None and (not isinstance(labels, list) or len(set(labels)) != len(labels)):
            raise DataError(f'{path}: "labels" must be a list of distinct names, in class order.')
        if not isinstance(merge, dict) or not all(isinstance(v, str) for v in merge.values()):
            raise DataError(f'{path}: "merge" must map a label to the label it becomes, e.g. {{"jog": "run"}}.')
        if not isinstance(ignore, list):
            raise DataError(f'{path}: "ignore" must be a list of labels whose samples count as unlabelled.')
        try:
            return cls(Units(**units), None if labels is None else tuple(check_label(x) for x in labels),
                       {str(k).strip(): check_label(v) for k, v in merge.items()},
                       tuple(str(x).strip() for x in ignore))  # fmt: skip
        except DataError as e:
            raise DataError(f"{path}: {e}") from None


@dataclass
class Dataset:
    """A dataset's recordings (at their own rates), its labels and raw sensors, and what reading noticed."""

    root: Path
    recordings: list[Recording]
    labels: tuple[str, ...]
    raw_channels: tuple[str, ...]
    warnings: list[str]

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
            "labels": list(self.labels),
            "labelled_seconds": {name: round(float(t), 1) for name, t in zip(self.labels, seconds)},
        }


def natural_key(name: str) -> tuple[int, int | str]:
    """Sort key that puts "2" before "10" (HAPT's subjects) and names after numbers."""
    return (0, int(name)) if name.isdigit() else (1, name)


def find_recordings(root: Path) -> list[Path]:
    """The dataset's CSV files, found recursively in a stable order; hidden files and folders skipped."""
    files = sorted(
        p for p in root.rglob("*")
        if p.name.lower().endswith(SUFFIXES) and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )  # fmt: skip
    if len(files) > MAX_RECORDINGS:
        raise DataError(f"{root} holds {len(files)} recordings, more than {MAX_RECORDINGS}; point --data at a smaller folder.")
    return files


def load_dataset(root: str | Path) -> Dataset:
    """Read every recording of the dataset folder ``root`` (at its own rate), with one label vocabulary.

    The labels are dataset.json's ``labels`` when given (in that order), otherwise every name found,
    sorted. A dataset without recordings, with mixed sensor sets, or with fewer than two labels is an
    error; so is a label in dataset.json that no recording uses.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: --data takes a folder of CSV recordings (see docs/data.md).")
    config = DatasetConfig.read(root)
    files = find_recordings(root)
    if not files:
        raise DataError(f"{root} holds no .csv or .csv.gz recording; a dataset is a folder of CSV recordings, "
                        "one subfolder per subject (see docs/data.md).")  # fmt: skip
    recordings, warnings = [], []
    for path in files:
        rec = read_csv(path, units=config.units)
        relative = path.relative_to(root)
        subject = relative.parts[0] if len(relative.parts) > 1 else relative.name
        recordings.append(replace(rec, subject=subject, source=str(relative)))
        warnings += rec.warnings
    sensors = {r.raw_channels for r in recordings}
    if len(sensors) > 1:
        with_gyro = next(r.source for r in recordings if len(r.raw_channels) == 6)
        without = next(r.source for r in recordings if len(r.raw_channels) == 3)
        raise DataError(f"{root}: recordings differ in their sensors ({with_gyro} has a gyroscope, {without} "
                        "does not); give every recording the same columns, or drop the gyro columns.")  # fmt: skip
    found = [config.merge.get(name, name) for r in recordings for name in r.classes]
    found = [check_label(name) for name in dict.fromkeys(found) if name not in config.ignore]
    labels = config.labels if config.labels is not None else tuple(sorted(found))
    unused = [name for name in labels if name not in found]
    if config.labels is not None and unused:
        raise DataError(f"{root / DATASET_FILE} lists label {', '.join(unused)}, which no recording uses; "
                        "remove it from \"labels\" or record it.")  # fmt: skip
    try:
        recordings = [r.with_classes(labels, config.merge, config.ignore) for r in recordings]
    except RecordingError as e:
        raise DataError(f"{e} (labels from {root / DATASET_FILE})") from None
    if len(labels) < 2:
        raise DataError(f"{root}: only {len(labels)} label ({', '.join(labels) or 'none'}) in the recordings' "
                        "label column; a classifier needs at least two activities.")  # fmt: skip
    return Dataset(root, recordings, tuple(labels), next(iter(sensors)), warnings)


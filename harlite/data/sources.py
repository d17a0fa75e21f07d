"""Where windows come from: the embedded HAPT recordings or a dataset folder, read one recording at a time
into the window store (``harlite.data.shards``), with the dataset's labels and sensors decided on the way.

A folder is read file by file: its sensors from the headers, each recording cut with its own label names
(after dataset.json's merge and ignore), the dataset's labels from all of them (dataset.json's ``labels``, or
every name found, sorted). Memory holds one recording at a time, whatever the size of the dataset.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harlite.core.frontend import FrontEndSpec
from harlite.core.protocol import Protocol, check_label
from harlite.data import hapt
from harlite.data.datasets import DATASET_FILE, SUFFIXES, DatasetConfig, find_recordings
from harlite.data.recordings import Recording, header_channels, read_csv
from harlite.data.shards import Entry, entry_folder, stored
from harlite.errors import DataError


@dataclass(frozen=True)
class Found:
    """A recording's entry in the window store, with the subject and source name a split groups it by."""

    entry: Entry
    subject: str
    source: str


@dataclass(frozen=True)
class StoredFolder:
    """A dataset folder in the window store: its labels, raw sensors and recordings."""

    labels: tuple[str, ...]
    raw_channels: tuple[str, ...]
    recordings: list[Found]
    relabel: dict


def stored_hapt(frontend: FrontEndSpec) -> list[Found]:
    """The embedded HAPT recordings in the window store, cut through ``frontend``."""
    recordings = hapt.load_hapt()
    jobs = [(entry_folder(f"{hapt.source_identity()}|{r.source}", frontend, "hapt"), frontend, _prepared(r, frontend))
            for r in recordings]  # fmt: skip
    entries = stored(jobs, "the embedded HAPT data")
    return [Found(e, str(r.subject), r.source) for e, r in zip(entries, recordings)]


def _prepared(rec: Recording, frontend: FrontEndSpec) -> Callable[[], tuple[Recording, float]]:
    return lambda: (rec.resampled(frontend.rate_hz).with_raw_channels(frontend.raw_channels), rec.rate)


def stored_folder(folder: str | Path, frontend_for: Callable[[tuple[str, ...]], FrontEndSpec],
                  protocol: Protocol | None = None) -> StoredFolder:  # fmt: skip
    """A dataset folder's recordings in the window store.

    The front end is ``protocol``'s (a trained model's) or ``frontend_for(the folder's raw sensors)``. The
    errors are those of ``harlite.data.datasets.load_dataset``: no recordings, mixed sensors, a label in
    dataset.json that no recording uses, fewer than two labels; with ``protocol``, a label or sensor the
    training data lacks.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: --data takes a folder of CSV recordings (see docs/data.md).")
    config = DatasetConfig.read(root)
    files = find_recordings(root)
    if not files:
        raise DataError(f"{root} holds no {' or '.join(SUFFIXES)} recording; a dataset is a folder of CSV recordings, "
                        "one subfolder per subject (see docs/data.md).")  # fmt: skip
    sensors = {path: header_channels(path) for path in files}
    if len(set(sensors.values())) > 1:
        with_gyro = next(p for p, s in sensors.items() if len(s) == 6).relative_to(root)
        without = next(p for p, s in sensors.items() if len(s) == 3).relative_to(root)
        raise DataError(f"{root}: recordings differ in their sensors ({with_gyro} has a gyroscope, {without} "
                        "does not); give every recording the same columns, or drop the gyro columns.")  # fmt: skip
    raw = next(iter(sensors.values()))
    if protocol is not None and len(raw) < len(protocol.raw_channels):
        raise DataError(f"{folder} has no gyroscope columns, but the training data has; give both the same sensors.")
    frontend = protocol.frontend if protocol is not None else frontend_for(raw)
    mapping = json.dumps([config.units.acc, config.units.gyro, config.merge, list(config.ignore)], sort_keys=True)
    jobs = []
    for path in files:
        stat = path.stat()
        identity = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        jobs.append((entry_folder(identity, frontend, mapping), frontend, _reader(path, config, frontend)))
    entries = stored(jobs, str(folder))
    recordings = []
    for path, entry in zip(files, entries):
        relative = path.relative_to(root)
        recordings.append(Found(entry, relative.parts[0] if len(relative.parts) > 1 else relative.name, str(relative)))
    found = [check_label(name) for name in dict.fromkeys(c for f in recordings for c in f.entry.classes)]
    labels = _labels(root, config, found, protocol)
    if all(f.entry.length < frontend.window for f in recordings):
        raise DataError(f"{folder}: every recording is shorter than one window ({frontend.window} samples, "
                        f"{frontend.window / frontend.rate_hz:.2f} s at {frontend.rate_hz:g} Hz); record "
                        "longer, or pass a shorter --window.")  # fmt: skip
    return StoredFolder(labels, raw, recordings, {"merge": config.merge, "ignore": list(config.ignore)})


def _labels(root: Path, config: DatasetConfig, found: list[str], protocol: Protocol | None) -> tuple[str, ...]:
    """The dataset's labels: the protocol's, dataset.json's, or every name found (sorted); checked."""
    if protocol is not None:
        extra = [name for name in found if name not in protocol.labels]
        if extra:
            raise DataError(f"{root} has label {', '.join(extra)}, which the training data lacks (its labels: "
                            f"{', '.join(protocol.labels)}); record it in the training data too, or 'ignore' it "
                            "in the test folder's dataset.json.")  # fmt: skip
        return protocol.labels
    labels = config.labels if config.labels is not None else tuple(sorted(found))
    unused = [name for name in labels if name not in found]
    if config.labels is not None and unused:
        raise DataError(f"{root / DATASET_FILE} lists label {', '.join(unused)}, which no recording uses; "
                        "remove it from \"labels\" or record it.")  # fmt: skip
    if len(labels) < 2:
        raise DataError(f"{root}: only {len(labels)} label ({', '.join(labels) or 'none'}) in the recordings' "
                        "label column; a classifier needs at least two activities.")  # fmt: skip
    return tuple(labels)


def _reader(path: Path, config: DatasetConfig, frontend: FrontEndSpec) -> Callable[[], tuple[Recording, float]]:
    """Reads ``path`` labelled in its own names (after merge and ignore), at the front end's rate and sensors."""

    def read() -> tuple[Recording, float]:
        rec = read_csv(path, units=config.units)
        names = tuple(dict.fromkeys(n for n in (config.merge.get(c, c) for c in rec.classes) if n not in config.ignore))
        own = rec.with_classes(names, config.merge, config.ignore)
        return own.resampled(frontend.rate_hz).with_raw_channels(frontend.raw_channels), rec.rate

    return read


def read_recordings(folder: str | Path, protocol: Protocol, wanted: Callable[[str, str], bool]) -> list[Recording]:
    """The recordings of a dataset folder whose (subject, source) are ``wanted``, at the protocol's rate, with
    its labels (after dataset.json's merge and ignore) and raw sensors; files not wanted are not read."""
    root = Path(folder)
    config = DatasetConfig.read(root)
    recordings = []
    for path in find_recordings(root):
        relative = path.relative_to(root)
        subject = relative.parts[0] if len(relative.parts) > 1 else relative.name
        if not wanted(subject, str(relative)):
            continue
        rec = read_csv(path, units=config.units).with_classes(protocol.labels, config.merge, config.ignore)
        rec = rec.resampled(protocol.rate_hz).with_raw_channels(protocol.raw_channels)
        recordings.append(Recording(rec.samples, rec.rate, rec.labels, rec.classes, rec.raw_channels, subject,
                                    str(relative), rec.warnings))  # fmt: skip
    return recordings

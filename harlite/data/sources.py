"""Where windows come from: the embedded HAPT recordings or a dataset folder, read one recording at a time
into the window store (``harlite.data.shards``), with the dataset's labels and sensors decided on the way.

A folder is read file by file: its sensors from the headers, each recording cut with its own label names
(after dataset.json's merge and ignore), the dataset's labels from all of them (dataset.json's ``labels``, or
every name found, sorted), with the checks of ``harlite.data.datasets.load_dataset``. A recording's entry in
the store is keyed by the sha256 of its file(s) (an edit that keeps a file's size and time is seen), its
path (the warnings name it), the parts of dataset.json that read it and the front end. Memory holds one
recording at a time, whatever the size of the dataset.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from harlite.core.frontend import FrontEndSpec
from harlite.core.protocol import Protocol
from harlite.data import hapt
from harlite.data.columns import header_channels
from harlite.data.datasets import (
    DATASET_FILE,
    DatasetConfig,
    check_label_count,
    dataset_files,
    dataset_labels,
    find_recordings,
    one_sensor_set,
    subject_and_source,
)
from harlite.data.recordings import Recording, read_csv
from harlite.data.shards import Entry, entry_folder, stored
from harlite.errors import DataError
from harlite.io.hashing import sha256_file


@dataclass(frozen=True)
class StoredRecording:
    """A recording's entry in the window store, with the subject and source name a split groups it by."""

    entry: Entry
    subject: str
    source: str


@dataclass(frozen=True)
class StoredFolder:
    """A dataset folder in the window store: its labels, raw sensors, recordings, what reading them noticed
    and how dataset.json relabels them (for replays)."""

    labels: tuple[str, ...]
    raw_channels: tuple[str, ...]
    recordings: list[StoredRecording]
    warnings: list[str]
    relabel: dict


def stored_hapt(frontend: FrontEndSpec, transitions: bool = False) -> list[StoredRecording]:
    """The embedded HAPT recordings in the window store, cut through ``frontend``; with ``transitions`` their
    postural transitions are the class ``other`` (``harlite.data.hapt.load_hapt``)."""
    recordings = hapt.load_hapt(transitions=transitions)
    kind = "hapt|other" if transitions else "hapt"
    jobs = [(entry_folder(f"{hapt.source_identity()}|{r.source}", frontend, kind), frontend, _prepared(r, frontend))
            for r in recordings]  # fmt: skip
    entries = stored(jobs, "the embedded HAPT data")
    return [StoredRecording(e, str(r.subject), r.source) for e, r in zip(entries, recordings)]


def _prepared(rec: Recording, frontend: FrontEndSpec) -> Callable[[], tuple[Recording, float]]:
    return lambda: (rec.resampled(frontend.rate_hz).with_raw_channels(frontend.raw_channels), rec.rate)


def protocol_gravity(protocol: Protocol) -> str:
    """"removed" when the front end takes the acceleration as it is (a model of linear acceleration)."""
    return "included" if any(c.startswith(("body_", "gravity_", "total_")) for c in protocol.frontend.channels) \
        else "removed"  # fmt: skip


def stored_folder(folder: str | Path, frontend_for: Callable[[tuple[str, ...], str], FrontEndSpec],
                  protocol: Protocol | None = None, min_labels: int = 2) -> StoredFolder:  # fmt: skip
    """A dataset folder's recordings in the window store.

    The front end is ``protocol``'s (a trained model's) or ``frontend_for(the folder's raw sensors, its
    gravity)``. The errors are those of ``harlite.data.datasets.load_dataset`` (no recordings, mixed sensors,
    a label in dataset.json that no recording uses, fewer than ``min_labels`` labels); with ``protocol``, a
    label, sensor or kind of acceleration the training data lacks.
    """
    root = Path(folder)
    config, found = dataset_files(root)
    gravity = config.layout.gravity
    raw = one_sensor_set(root, {subject_and_source(root, p)[1]: header_channels(p, config.layout) for p in found.recordings})
    if protocol is not None:
        if len(raw) < len(protocol.raw_channels):
            raise DataError(f"{folder} has no gyroscope columns, but the training data has; give both the same sensors.")
        if gravity != protocol_gravity(protocol):
            raise DataError(f"{folder} holds acceleration {'without' if gravity == 'removed' else 'with'} gravity, "
                            "the training data the other kind; give both the same (dataset.json's \"gravity\").")  # fmt: skip
    frontend = protocol.frontend if protocol is not None else frontend_for(raw, gravity)
    mapping = json.dumps([asdict(config.units), asdict(config.layout), config.merge, list(config.ignore)], sort_keys=True)
    jobs = [(entry_folder(json.dumps([str(path.resolve()), _digests(path, config)]), frontend, mapping), frontend,
             _reader(path, config, frontend)) for path in found.recordings]  # fmt: skip
    entries = stored(jobs, str(folder))
    recordings = [StoredRecording(entry, *subject_and_source(root, path)) for path, entry in zip(found.recordings, entries)]
    labels = dataset_labels(root, config, [name for r in recordings for name in r.entry.classes])
    for r in recordings:
        unknown = [name for name in r.entry.classes if name not in labels]
        if unknown:  # only with dataset.json's "labels"
            raise DataError(f"{r.source}: label {unknown[0]!r} is not one of {', '.join(labels)}; add it to the "
                            "dataset's labels, or 'merge' or 'ignore' it in dataset.json (labels from "
                            f"{root / DATASET_FILE})")  # fmt: skip
    check_label_count(root, labels, min_labels)
    if protocol is not None:
        extra = [name for name in labels if name not in protocol.labels]
        if extra:
            raise DataError(f"{folder} has label {', '.join(extra)}, which the training data lacks (its labels: "
                            f"{', '.join(protocol.labels)}); record it in the training data too, or 'ignore' it "
                            "in the test folder's dataset.json.")  # fmt: skip
        labels = protocol.labels
    if all(r.entry.length < frontend.window for r in recordings):
        raise DataError(f"{folder}: every recording is shorter than one window ({frontend.window} samples, "
                        f"{frontend.window / frontend.rate_hz:.2f} s at {frontend.rate_hz:g} Hz); record "
                        "longer, or pass a shorter --window.")  # fmt: skip
    warnings = found.note(root) + [w for r in recordings for w in r.entry.warnings]
    relabel = {"merge": config.merge, "ignore": list(config.ignore), "gravity": gravity}
    return StoredFolder(labels, raw, recordings, warnings, relabel)


def _digests(path: Path, config: DatasetConfig) -> list[str]:
    """sha256 of a recording's file, or of each file of a recording folder (one per sensor)."""
    files = [path / name for names in config.layout.sensors.values() for name in names] if path.is_dir() else [path]
    return [sha256_file(f, error=DataError) for f in files]


def _reader(path: Path, config: DatasetConfig, frontend: FrontEndSpec) -> Callable[[], tuple[Recording, float]]:
    """Reads ``path`` labelled in its own names (after merge and ignore), at the front end's rate and sensors."""

    def read() -> tuple[Recording, float]:
        rec = read_csv(path, units=config.units, layout=config.layout)
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
    for path in find_recordings(root, config.layout).recordings:
        subject, source = subject_and_source(root, path)
        if not wanted(subject, source):
            continue
        rec = read_csv(path, units=config.units, layout=config.layout)
        rec = rec.with_classes(protocol.labels, config.merge, config.ignore)
        rec = rec.resampled(protocol.rate_hz).with_raw_channels(protocol.raw_channels)
        recordings.append(Recording(rec.samples, rec.rate, rec.labels, rec.classes, rec.raw_channels, subject, source,
                                    rec.warnings, rec.gravity))  # fmt: skip
    return recordings

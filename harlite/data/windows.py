"""Recordings to labelled model windows through the front end; the train/validation/test split; a cache.

``DataSpec`` says where a build's windows come from (the embedded HAPT default or a folder of the
user's recordings, an optional test folder or test subjects) and the protocol options (rate, window,
hop, channels); it is stored in run folders and bundles so that every stage finds the same windows.
``load_split(spec)`` decides the protocol from the data and returns the split windows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harlite.core.frontend import DEFAULT_HOP, DEFAULT_RATE_HZ, DEFAULT_WINDOW, FrontEndSpec, default_channels
from harlite.core.protocol import HAPT, UCI_TEST_SUBJECTS, Protocol
from harlite.core.unknown import OTHER_LABEL
from harlite.data.datasets import load_dataset, natural_key
from harlite.data.hapt import load_hapt
from harlite.data.recordings import Recording
from harlite.data.shards import ShardedWindows, WindowSet, window_labels
from harlite.data.sources import StoredRecording, protocol_gravity, read_recordings, stored_folder, stored_hapt
from harlite.errors import DataError
from harlite.io.files import is_within

__all__ = ["DataSpec", "Split", "WindowSet", "Windows", "check_folders", "describe", "load_split", "protocol_gravity",
           "window_labels"]

HAPT_SOURCE = "hapt"
# A split whose windows take at most this many bytes is held in memory; a larger one streams from the store.
IN_MEMORY_BYTES = 64 << 20
# The automatic split of a user's dataset: shares of the groups held out for test and validation.
TEST_SHARE, VAL_SHARE, MIN_GROUPS = 0.2, 0.15, 3
# By time (too few subjects and recordings): the last 20 % of every recording is test, the 10 % before validation.
TIME_VAL_START, TIME_TEST_START = 0.7, 0.8
# Warnings of data info: a class with fewer windows than this, classes more unequal than this ratio.
FEW_WINDOWS, UNEQUAL_RATIO = 20, 5.0


# Windows in memory, or in shards on disk (read lazily): both count, label, group, normalize and batch alike.
Windows = WindowSet | ShardedWindows


@dataclass(frozen=True)
class DataSpec:
    """Where the windows come from and the protocol options; ``None`` means the data's default."""

    data: str = HAPT_SOURCE
    test_data: str | None = None
    test_subjects: tuple[str, ...] | None = None
    val_subjects: int | None = None
    split_seed: int = 0
    rate_hz: float | None = None
    window: int | None = None
    hop: int | None = None
    channels: tuple[str, ...] | None = None
    transitions: bool = False  # HAPT only: its postural transitions train the class "other" (always unknown)

    def __post_init__(self) -> None:
        for name in ("test_subjects", "channels"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        if self.test_data is not None and self.test_subjects is not None:
            raise DataError("give a test folder or test subjects, not both.")
        if self.transitions and self.data != HAPT_SOURCE:
            raise DataError("--transitions-as-other is for the HAPT default: a dataset folder names its 'other' "
                            "labels in dataset.json.")  # fmt: skip
        if self.data == HAPT_SOURCE and self.test_data is not None:
            raise DataError("--test-data needs --data: the HAPT default has its own test subjects.")

    @property
    def own(self) -> bool:
        """A user's dataset folder rather than the embedded HAPT recordings."""
        return self.data != HAPT_SOURCE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})

    def frontend(self, raw_channels: tuple[str, ...], gravity: str = "included") -> FrontEndSpec:
        """The front end these options give for a dataset's raw sensors; acceleration without gravity
        (``gravity="removed"``) goes in as it is, with no gravity to split off."""
        channels = self.channels or (default_channels(raw_channels) if gravity == "included" else raw_channels)
        try:
            return FrontEndSpec(
                rate_hz=float(self.rate_hz or DEFAULT_RATE_HZ),
                window=int(self.window or DEFAULT_WINDOW),
                hop=int(self.hop or min(DEFAULT_HOP, self.window or DEFAULT_HOP)),
                channels=channels,
                raw_channels=raw_channels,
            )
        except ValueError as e:
            raise DataError(f"{e}.") from None


@dataclass
class Split:
    """The windows of a build, split three ways, with the protocol decided from the data.

    The parts are ``ShardedWindows`` (read from the window store as needed) except for a split by time,
    whose parts are cut out of recordings and held in memory; ``in_memory`` says whether the whole split is
    small enough (``IN_MEMORY_BYTES``) to train from memory.
    """

    spec: DataSpec
    protocol: Protocol
    train: Windows
    val: Windows
    test: Windows
    pool: Windows  # every non-test window, in the data's order: calibration draws from here
    kind: str  # "subject", "recording" or "time": what the split keeps together
    groups: dict[str, list[str]] = field(default_factory=dict)  # train/val/test -> group names
    warnings: list[str] = field(default_factory=list)
    relabel: dict[str, Any] = field(default_factory=dict)  # dataset.json's merge, ignore and gravity, for replays

    @property
    def nbytes(self) -> int:
        """Bytes the split's windows (pool and test) take in memory as float32."""
        return self.pool.nbytes + self.test.nbytes

    @property
    def in_memory(self) -> bool:
        """Whether the split is small enough to hold in memory (or held there already)."""
        return self.nbytes <= IN_MEMORY_BYTES or all(isinstance(p, WindowSet) for p in (self.train, self.val, self.test))

    def info(self) -> dict[str, Any]:
        """The manifest's ``dataset``: where the data came from, how it was split, how labels were mapped."""
        counts = {part: {**getattr(self, part).class_counts(self.protocol.labels), "total": len(getattr(self, part))}
                  for part in ("train", "val", "test")}  # fmt: skip
        return {**self.spec.to_dict(), "split": self.kind, **self.groups, "windows": counts, **self.relabel}

    def val_recordings(self) -> list[Recording]:
        """The validation split's continuous recordings at the protocol's rate (what stream calibration replays)."""
        if not self.spec.own:
            return load_hapt(self.groups["val"], transitions=True) if self.groups.get("val") else []
        if self.kind == "time":
            return [_tail(_head(r, TIME_TEST_START), TIME_VAL_START / TIME_TEST_START, "val")
                    for r in read_recordings(self.spec.data, self.protocol, lambda s, r: True)]  # fmt: skip
        val = set(self.groups.get("val", []))
        if self.kind == "subject":
            return read_recordings(self.spec.data, self.protocol, lambda subject, source: subject in val)
        return read_recordings(self.spec.data, self.protocol, lambda subject, source: source in val)

    def test_recordings(self) -> list[Recording]:
        """The test split's continuous recordings at the protocol's rate (what a replay streams); only those
        files are read."""
        if not self.spec.own:
            return load_hapt(self.groups["test"], transitions=True)
        if self.spec.test_data is not None:
            return read_recordings(self.spec.test_data, self.protocol, lambda subject, source: True)
        if self.kind == "time":
            return [_tail(r, TIME_TEST_START) for r in read_recordings(self.spec.data, self.protocol, lambda s, r: True)]
        test = set(self.groups["test"])
        if self.kind == "subject":
            return read_recordings(self.spec.data, self.protocol, lambda subject, source: subject in test)
        return read_recordings(self.spec.data, self.protocol, lambda subject, source: source in test)


def load_split(spec: DataSpec = DataSpec(), protocol: Protocol | None = None) -> Split:
    """The split windows of ``spec``; the protocol comes from the data unless ``protocol`` fixes it
    (a trained model's, so that its front end is the one used). Recordings are windowed once into the
    window store (``harlite.data.shards``), one at a time."""
    if not spec.own:
        labels = (*HAPT.labels, OTHER_LABEL) if spec.transitions else HAPT.labels
        protocol = protocol or Protocol(labels, spec.frontend(HAPT.raw_channels))
        return _split(spec, protocol, stored_hapt(protocol.frontend, transitions=spec.transitions), None, [])
    check_folders(spec)
    folder = stored_folder(spec.data, spec.frontend, protocol)
    protocol = protocol or Protocol(folder.labels, spec.frontend(folder.raw_channels, folder.relabel["gravity"]))
    warnings, test = list(folder.warnings), None
    if spec.test_data is not None:
        test_folder = stored_folder(spec.test_data, spec.frontend, protocol, min_labels=0)
        test, warnings = test_folder.recordings, warnings + test_folder.warnings
    split = _split(spec, protocol, folder.recordings, test, warnings)
    split.relabel = folder.relabel
    return split


def check_folders(spec: DataSpec, out: str | Path | None = None) -> None:
    """The training and test folders must differ (neither inside the other), and an output folder must
    lie outside both: a build would read its own files as recordings."""
    folders = [("--data", Path(spec.data))] + ([("--test-data", Path(spec.test_data))] if spec.test_data else [])
    if len(folders) == 2 and (is_within(folders[0][1], folders[1][1]) or is_within(folders[1][1], folders[0][1])):
        raise DataError(f"--test-data {spec.test_data} and --data {spec.data} overlap: the test recordings would be "
                        "training recordings too; give a test folder of other recordings (or --test-subjects).")  # fmt: skip
    for option, folder in folders if out is not None else []:
        if is_within(Path(out), folder):
            raise DataError(f"the output folder {out} lies inside {option} {folder}: the next run would read its "
                            "files as recordings; write the run elsewhere.")  # fmt: skip


def _sharded(found: list[StoredRecording], protocol: Protocol, by: str) -> ShardedWindows:
    """The windows of ``found`` recordings in the protocol's labels, grouped by subject or by recording."""
    shards = tuple(s for f in found for s in f.entry.shards(protocol.labels, f.subject if by == "subject" else f.source))
    return ShardedWindows(shards, protocol.window, len(protocol.frontend.channels))


def _split(spec: DataSpec, protocol: Protocol, found: list[StoredRecording], test_found: list[StoredRecording] | None,
           warnings: list[str]) -> Split:  # fmt: skip
    """Assign every window to train, validation or test; see docs/data.md for the rules."""
    labelled = [f for f in found if f.entry.n]
    if not labelled:
        raise DataError(f"{spec.data}: no labelled window (a window's samples must all carry one label); "
                        "check the label column.")  # fmt: skip
    subjects = {f.subject for f in labelled}
    recordings = {f.source for f in labelled}
    if test_found is not None or spec.test_subjects is not None or not spec.own or len(subjects) >= MIN_GROUPS:
        kind = "subject"
    elif len(recordings) >= MIN_GROUPS:
        kind = "recording"
    else:
        kind = "time"
    everything: Windows = _by_time(labelled, protocol) if kind == "time" else _sharded(found, protocol, kind)
    names = sorted(set(everything.names), key=natural_key)
    rng = np.random.default_rng(spec.split_seed)
    if test_found is not None:
        test_groups: list[str] = []
    elif kind == "time":
        test_groups = [g for g in names if g.endswith("#test")]
    elif spec.test_subjects is not None or not spec.own:
        test_groups = list(spec.test_subjects or UCI_TEST_SUBJECTS)
        unknown = [g for g in test_groups if g not in names]
        if unknown:
            raise DataError(f"test subject {', '.join(unknown)} is not in {spec.data} (subjects: {', '.join(names)}).")
    else:
        n_test = max(1, round(TEST_SHARE * len(names)))
        test_groups = sorted(rng.permutation(names)[:n_test].tolist(), key=natural_key)
    rest = [g for g in names if g not in test_groups]
    if kind == "time":
        val_groups = [g for g in rest if g.endswith("#val")]
    else:
        n_val = spec.val_subjects if spec.val_subjects is not None else (
            4 if not spec.own else max(1, round(VAL_SHARE * len(names))) if len(rest) >= MIN_GROUPS else 0)  # fmt: skip
        if n_val >= len(rest):
            raise DataError(f"{n_val} validation subject(s) would leave none to train on ({len(rest)} available); "
                            "pass a smaller --val-subjects.")  # fmt: skip
        val_groups = sorted(rng.choice(rest, size=n_val, replace=False).tolist(), key=natural_key) if n_val else []
    fit_groups = [g for g in rest if g not in val_groups and not g.endswith("#gap")]
    test = _sharded(test_found, protocol, "subject") if test_found is not None else everything.of_groups(test_groups)
    pool = everything.of_groups([g for g in everything.names if g not in test_groups and not g.endswith("#gap")])
    split = Split(spec, protocol, everything.of_groups(fit_groups), everything.of_groups(val_groups), test, pool,
                  kind, {"train": fit_groups, "val": val_groups, "test": test_groups}, list(warnings))  # fmt: skip
    if not len(split.train):
        raise DataError(f"{spec.data}: no training windows are left after the split; add recordings.")
    if not len(split.test) and spec.test_data is not None:
        raise DataError(f"{spec.test_data} has no labelled window to measure the model on: label its recordings (the "
                        f"label column), or replay them without labels: harlite simulate BUNDLE --dataset {spec.test_data}.")  # fmt: skip
    if not len(split.test):
        raise DataError(f"{spec.data}: the test split has no labelled windows; give --test-data or --test-subjects.")
    missing = [name for name, n in split.train.class_counts(protocol.labels).items() if n == 0]
    if missing:
        raise DataError(f"{spec.data}: label {', '.join(missing)} has no training window (after the split); record "
                        "more of it, or 'ignore' it in dataset.json.")  # fmt: skip
    split.warnings += split_warnings(split)
    return split


def _by_time(found: list[StoredRecording], protocol: Protocol) -> WindowSet:
    """Every window of ``found`` in memory, grouped ``recording#train``, ``#val``, ``#test`` by where it lies in
    its recording, or ``#gap`` for a window that straddles a boundary (used by no split, so no sample is in
    two)."""
    parts = [(f, shard) for f in found for shard in f.entry.shards(protocol.labels, f.source)]
    X = np.concatenate([shard.X() for _, shard in parts])
    y = np.concatenate([shard.y() for _, shard in parts])
    start = np.concatenate([shard.starts() for _, shard in parts])
    length = np.concatenate([np.full(shard.n, f.entry.length) for f, shard in parts])
    end = start + protocol.window
    part = np.full(len(start), "#gap", dtype=object)
    part[end <= TIME_VAL_START * length] = "#train"
    part[(start >= TIME_VAL_START * length) & (end <= TIME_TEST_START * length)] = "#val"
    part[start >= TIME_TEST_START * length] = "#test"
    recording = np.concatenate([np.full(shard.n, f.source) for f, shard in parts]).astype(str)
    return WindowSet(X, y, np.char.add(recording, part.astype(str)))


def _head(rec: Recording, share: float) -> Recording:
    """The part of a recording before ``share`` of its length."""
    last = int(np.floor(share * len(rec)))
    return replace(rec, samples=rec.samples[:last], labels=None if rec.labels is None else rec.labels[:last])


def _tail(rec: Recording, share: float, part: str = "test") -> Recording:
    """The part of a recording from ``share`` of its length on (the time split's test part)."""
    first = int(np.ceil(share * len(rec)))
    labels = None if rec.labels is None else rec.labels[first:]
    return replace(rec, samples=rec.samples[first:], labels=labels, source=f"{rec.source}#{part}")


def split_warnings(split: Split) -> list[str]:
    """What a user should know about a split: very few windows of a class, a class the test split lacks,
    very unequal classes, a split by recording or time because there are too few subjects."""
    labels, notes = split.protocol.labels, []
    train, test = split.train.class_counts(labels), split.test.class_counts(labels)
    few = [f"{k} ({n})" for k, n in train.items() if 0 < n < FEW_WINDOWS]
    if few:
        notes.append(f"few training windows for {', '.join(few)}: record more of them for a reliable model")
    absent = [k for k, n in test.items() if n == 0]
    if absent:
        notes.append(f"the test split has no window of {', '.join(absent)}: its accuracy is not measured")
    counts = [n for n in train.values() if n]
    if counts and max(counts) > UNEQUAL_RATIO * min(counts):
        notes.append(f"classes are very unequal in training (from {min(counts)} to {max(counts)} windows): "
                     "training weights them, but more data of the small ones helps most")  # fmt: skip
    if split.kind == "recording":
        notes.append("fewer than 3 subjects: the split keeps recordings together instead (test and training "
                     "may share a person)")  # fmt: skip
    elif split.kind == "time":
        notes.append("fewer than 3 subjects and recordings: the split is by time (the last 20% of every "
                     "recording is test, the 10% before it validation)")  # fmt: skip
    return notes


def describe(spec: DataSpec = DataSpec()) -> dict[str, Any]:
    """What ``harlite data info`` shows: recordings, subjects, rates, hours, sensors, labels, the split's
    labelled windows per class, and warnings."""
    split = load_split(spec)
    if spec.own:
        summary = load_dataset(spec.data).summary()
        if spec.test_data is not None:
            test = load_dataset(spec.test_data, min_labels=0).summary()
            summary["test_data"] = {k: test[k] for k in ("source", "recordings", "subjects", "hours", "rates_hz")}
    else:
        recordings = load_hapt()
        summary = {
            "source": HAPT_SOURCE,
            "recordings": len(recordings),
            "subjects": sorted({r.subject for r in recordings}, key=int),
            "rates_hz": sorted({r.rate for r in recordings}),
            "hours": round(sum(r.duration_s for r in recordings) / 3600, 4),
            "sensors": list(HAPT.raw_channels),
            "labels": list(HAPT.labels),
        }
    info = split.info()
    return {**summary, "protocol": {"rate_hz": split.protocol.rate_hz, "window": split.protocol.window,
                                    "hop": split.protocol.hop, "channels": list(split.protocol.frontend.channels)},
            "split": split.kind, "groups": {k: info[k] for k in ("train", "val", "test")}, "windows": info["windows"],
            "warnings": split.warnings}  # fmt: skip

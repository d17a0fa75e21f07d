"""Recordings to labelled model windows through the front end; the train/validation/test split; a cache.

``DataSpec`` says where a build's windows come from (the embedded HAPT default or a folder of the
user's recordings, an optional test folder or test subjects) and the protocol options (rate, window,
hop, channels); it is stored in run folders and bundles so that every stage finds the same windows.
``load_split(spec)`` decides the protocol from the data and returns the split windows.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harlite.core.frontend import (
    DEFAULT_HOP,
    DEFAULT_RATE_HZ,
    DEFAULT_WINDOW,
    FrontEndSpec,
    cut_windows,
    default_channels,
    features,
    window_starts,
)
from harlite.core.protocol import HAPT, UCI_TEST_SUBJECTS, UNLABELLED, Protocol
from harlite.core.unknown import OTHER_LABEL
from harlite.data import hapt
from harlite.data.datasets import DATASET_FILE, DatasetConfig, find_recordings, load_dataset, natural_key
from harlite.data.hapt import load_hapt
from harlite.data.recordings import Recording
from harlite.errors import DataError
from harlite.io.cache import cached_arrays
from harlite.io.files import is_within
from harlite.io.hashing import sha256_file

HAPT_SOURCE = "hapt"
WINDOWS_VERSION = 2  # bump when the cached window arrays change layout
# The automatic split of a user's dataset: shares of the groups held out for test and validation.
TEST_SHARE, VAL_SHARE, MIN_GROUPS = 0.2, 0.15, 3
# By time (too few subjects and recordings): the last 20 % of every recording is test, the 10 % before validation.
TIME_VAL_START, TIME_TEST_START = 0.7, 0.8
# Warnings of data info: a class with fewer windows than this, classes more unequal than this ratio.
FEW_WINDOWS, UNEQUAL_RATIO = 20, 5.0


@dataclass(frozen=True)
class WindowSet:
    """Labelled windows in physical units: X (n, window, C) float32, y (n,) class, group (n,) the split unit."""

    X: np.ndarray
    y: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(self.X[mask], self.y[mask], self.group[mask])

    def of_groups(self, groups: tuple[str, ...] | list[str]) -> WindowSet:
        return self.take(np.isin(self.group, list(groups)))

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and standard deviation over every sample of every window."""
        flat = self.X.reshape(-1, self.X.shape[-1]).astype(np.float64)
        return flat.mean(axis=0).astype(np.float32), np.maximum(flat.std(axis=0), 1e-6).astype(np.float32)

    def class_counts(self, labels: tuple[str, ...]) -> dict[str, int]:
        return {name: int((self.y == i).sum()) for i, name in enumerate(labels)}


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
    """The windows of a build, split three ways, with the protocol decided from the data."""

    spec: DataSpec
    protocol: Protocol
    train: WindowSet
    val: WindowSet
    test: WindowSet
    pool: WindowSet  # every non-test window, in the data's order: calibration draws from here
    kind: str  # "subject", "recording" or "time": what the split keeps together
    groups: dict[str, list[str]] = field(default_factory=dict)  # train/val/test -> group names
    warnings: list[str] = field(default_factory=list)
    relabel: dict[str, Any] = field(default_factory=dict)  # dataset.json's merge and ignore, for replays

    def info(self) -> dict[str, Any]:
        """The manifest's ``dataset``: where the data came from, how it was split, how labels were mapped."""
        counts = {part: {**getattr(self, part).class_counts(self.protocol.labels), "total": len(getattr(self, part))}
                  for part in ("train", "val", "test")}  # fmt: skip
        return {**self.spec.to_dict(), "split": self.kind, **self.groups, "windows": counts, **self.relabel}

    def val_recordings(self) -> list[Recording]:
        """The validation split's continuous recordings at the protocol's rate (what stream calibration replays)."""
        if not self.spec.own:
            return load_hapt(self.groups["val"], transitions=True) if self.groups.get("val") else []
        recordings = [r.resampled(self.protocol.rate_hz) for r in _own_recordings(self.spec.data, self.protocol)[0]]
        if self.kind == "time":
            return [_tail(_head(r, TIME_TEST_START), TIME_VAL_START / TIME_TEST_START, "val") for r in recordings]
        key = (lambda r: r.subject) if self.kind == "subject" else (lambda r: r.source)
        return [r for r in recordings if key(r) in self.groups.get("val", [])]

    def test_recordings(self) -> list[Recording]:
        """The test split's continuous recordings at the protocol's rate (what a replay streams)."""
        if not self.spec.own:
            return load_hapt(self.groups["test"], transitions=True)
        rate = self.protocol.rate_hz
        if self.spec.test_data is not None:
            return [r.resampled(rate) for r in _own_recordings(self.spec.test_data, self.protocol, 0)[0]]
        recordings = [r.resampled(rate) for r in _own_recordings(self.spec.data, self.protocol)[0]]
        if self.kind == "time":
            return [_tail(r, TIME_TEST_START) for r in recordings]
        key = (lambda r: r.subject) if self.kind == "subject" else (lambda r: r.source)
        return [r for r in recordings if key(r) in self.groups["test"]]


def window_labels(labels: np.ndarray | None, n: int, spec: FrontEndSpec) -> np.ndarray:
    """The class of each stream window, or UNLABELLED where its samples do not all share one class."""
    starts = window_starts(n, spec)
    if labels is None:
        return np.full(len(starts), UNLABELLED, dtype=np.int64)
    lab = np.asarray(labels)[starts[:, None] + np.arange(spec.window)[None, :]]
    pure = (lab == lab[:, :1]).all(axis=1) & (lab[:, 0] != UNLABELLED)
    return np.where(pure, lab[:, 0], UNLABELLED).astype(np.int64)


def recording_windows(rec: Recording, spec: FrontEndSpec) -> tuple[np.ndarray, np.ndarray]:
    """All stream windows of one recording (m, window, C) and their labels (m,) (-1 where impure)."""
    if rec.rate != spec.rate_hz:
        raise ValueError(f"{rec.source}: rate {rec.rate} Hz, the front end expects {spec.rate_hz} Hz")
    return cut_windows(features(rec.samples, spec), spec), window_labels(rec.labels, len(rec), spec)


def windows_from_recordings(recordings: list[Recording], spec: FrontEndSpec) -> dict[str, np.ndarray]:
    """Labelled windows of every recording, each run through the front end as one stream: X, y and per
    window its subject, recording, first sample and the recording's length (what a split needs)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("X", "y", "subject", "recording", "start", "length")}
    for rec in recordings:
        X, y = recording_windows(rec, spec)
        keep = y != UNLABELLED
        n = int(keep.sum())
        parts["X"].append(X[keep])
        parts["y"].append(y[keep])
        parts["subject"].append(np.full(n, rec.subject or rec.source))
        parts["recording"].append(np.full(n, rec.source))
        parts["start"].append(window_starts(len(rec), spec)[keep])
        parts["length"].append(np.full(n, len(rec), dtype=np.int64))
    if not parts["X"] or not sum(len(y) for y in parts["y"]):
        return {"X": np.zeros((0, spec.window, len(spec.channels)), np.float32), "y": np.zeros(0, np.int64),
                **{k: np.zeros(0, dtype=str if k in ("subject", "recording") else np.int64)
                   for k in ("subject", "recording", "start", "length")}}  # fmt: skip
    return {k: np.concatenate(v).astype(str) if k in ("subject", "recording") else np.concatenate(v)
            for k, v in parts.items()}  # fmt: skip


def hapt_windows(
    spec: FrontEndSpec = HAPT.frontend, cache: bool = True, transitions: bool = False
) -> dict[str, np.ndarray]:
    """The HAPT recordings' labelled windows through ``spec`` (cached by the front end's digest); with
    ``transitions`` also the windows wholly inside postural transitions, as the class ``other``."""

    def build() -> dict[str, np.ndarray]:
        print("harlite: windowing the HAPT recordings (cached afterwards)...", file=sys.stderr)
        return windows_from_recordings(hapt.load_hapt(cache=cache, transitions=transitions), spec)

    identity = f"{hapt.source_identity()}|{spec.digest()}|w{WINDOWS_VERSION}" + ("|other" if transitions else "")
    return cached_arrays("windows-hapt", identity, build) if cache else build()


def load_split(spec: DataSpec = DataSpec(), protocol: Protocol | None = None) -> Split:
    """The split windows of ``spec``; the protocol comes from the data unless ``protocol`` fixes it
    (a trained model's, so that its front end is the one used)."""
    if not spec.own:
        labels = (*HAPT.labels, OTHER_LABEL) if spec.transitions else HAPT.labels
        protocol = protocol or Protocol(labels, spec.frontend(HAPT.raw_channels))
        return _split(spec, protocol, hapt_windows(protocol.frontend, transitions=spec.transitions), None, [])
    check_folders(spec)
    if protocol is None:
        dataset = load_dataset(spec.data)
        protocol = Protocol(dataset.labels, spec.frontend(dataset.raw_channels, dataset.gravity))
    arrays, warnings = _own_windows(spec.data, protocol)
    test = None
    if spec.test_data is not None:
        test, test_warnings = _own_windows(spec.test_data, protocol, min_labels=0)
        warnings += test_warnings
    split = _split(spec, protocol, arrays, test, warnings)
    config = DatasetConfig.read(Path(spec.data))
    split.relabel = {"merge": config.merge, "ignore": list(config.ignore), "gravity": config.layout.gravity}
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


def _own_recordings(folder: str, protocol: Protocol, min_labels: int = 2) -> tuple[list[Recording], list[str]]:
    """A dataset folder's recordings, with the protocol's labels and raw sensors (at their own rates),
    and what reading them noticed; a test folder (``min_labels`` 0) may hold one label, or none."""
    dataset = load_dataset(folder, min_labels)
    extra = [name for name in dataset.labels if name not in protocol.labels]
    if extra:
        raise DataError(f"{folder} has label {', '.join(extra)}, which the training data lacks (its labels: "
                        f"{', '.join(protocol.labels)}); record it in the training data too, or 'ignore' it "
                        "in the test folder's dataset.json.")  # fmt: skip
    if len(dataset.raw_channels) < len(protocol.raw_channels):
        raise DataError(f"{folder} has no gyroscope columns, but the training data has; give both the same sensors.")
    if dataset.gravity != protocol_gravity(protocol):
        raise DataError(f"{folder} holds acceleration {'without' if dataset.gravity == 'removed' else 'with'} gravity, "
                        "the training data the other kind; give both the same (dataset.json's \"gravity\").")  # fmt: skip
    recordings = [r.with_classes(protocol.labels).with_raw_channels(protocol.raw_channels) for r in dataset.recordings]
    return recordings, dataset.warnings


def protocol_gravity(protocol: Protocol) -> str:
    """ "removed" when the front end takes the acceleration as it is (a model of linear acceleration)."""
    return "included" if any(c.startswith(("body_", "gravity_", "total_")) for c in protocol.frontend.channels) \
        else "removed"  # fmt: skip


def _own_windows(folder: str, protocol: Protocol, min_labels: int = 2) -> tuple[dict[str, np.ndarray], list[str]]:
    """A dataset folder's windows through the protocol's front end, cached by the content of its files
    (sha256 of every recording and of dataset.json), with the warnings reading them gave."""
    root = Path(folder)
    identity = json.dumps([str(root.resolve()), dataset_digest(root), list(protocol.labels), protocol.frontend.digest(),
                           min_labels, WINDOWS_VERSION])  # fmt: skip

    def build() -> dict[str, np.ndarray]:
        recordings, notes = _own_recordings(folder, protocol, min_labels)
        short = [r for r in recordings if r.duration_s * protocol.rate_hz < protocol.window]
        if len(short) == len(recordings):
            raise DataError(f"{folder}: every recording is shorter than one window ({protocol.window} samples, "
                            f"{protocol.window / protocol.rate_hz:.2f} s at {protocol.rate_hz:g} Hz); record "
                            "longer, or pass a shorter --window.")  # fmt: skip
        print(f"harlite: windowing {len(recordings)} recordings of {folder} (cached afterwards)...", file=sys.stderr)
        arrays = windows_from_recordings([r.resampled(protocol.rate_hz) for r in recordings], protocol.frontend)
        return {**arrays, "warnings": np.array(notes, dtype=str)}

    arrays = dict(cached_arrays("windows-own", identity, build))
    warnings = [str(w) for w in arrays.pop("warnings", np.zeros(0, str))]
    return arrays, warnings


def dataset_digest(root: Path) -> list[tuple[str, str]]:
    """(relative path, sha256) of dataset.json and every recording file of a dataset folder: what its
    windows depend on (an edit that keeps a file's size and time changes it)."""

    config = DatasetConfig.read(root)
    found = find_recordings(root, config.layout)
    files = [root / DATASET_FILE] if (root / DATASET_FILE).is_file() else []
    for path in found.recordings:
        files += sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [(str(p.relative_to(root)), sha256_file(p, error=DataError)) for p in files]


def _split(spec: DataSpec, protocol: Protocol, arrays: dict[str, np.ndarray],
           test_arrays: dict[str, np.ndarray] | None, warnings: list[str]) -> Split:  # fmt: skip
    """Assign every window to train, validation or test; see docs/data.md for the rules."""
    if not len(arrays["y"]):
        raise DataError(f"{spec.data}: no labelled window (a window's samples must all carry one label); "
                        "check the label column.")  # fmt: skip
    subjects = sorted(set(arrays["subject"].tolist()), key=natural_key)
    recordings = sorted(set(arrays["recording"].tolist()), key=natural_key)
    if test_arrays is not None or spec.test_subjects is not None or not spec.own or len(subjects) >= MIN_GROUPS:
        kind, group = "subject", arrays["subject"]
    elif len(recordings) >= MIN_GROUPS:
        kind, group = "recording", arrays["recording"]
    else:
        kind, group = "time", _time_groups(arrays)
    names = sorted(set(group.tolist()), key=natural_key)
    rng = np.random.default_rng(spec.split_seed)
    if test_arrays is not None:
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
    all_windows = WindowSet(arrays["X"], arrays["y"], group)
    test_mask = np.isin(group, test_groups)
    fit_groups = [g for g in rest if g not in val_groups and not g.endswith("#gap")]
    test = WindowSet(test_arrays["X"], test_arrays["y"], test_arrays["subject"]) if test_arrays is not None \
        else all_windows.take(test_mask)  # fmt: skip
    pool = all_windows.take(~test_mask & ~np.char.endswith(group.astype(str), "#gap"))
    split = Split(spec, protocol, all_windows.of_groups(fit_groups), all_windows.of_groups(val_groups), test, pool,
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


def _time_groups(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Per window ``recording#train``, ``#val``, ``#test`` by where it lies in its recording, or ``#gap``
    for a window that straddles a boundary (used by no split, so no sample is in two)."""
    start, length = arrays["start"], arrays["length"]
    end = start + arrays["X"].shape[1]
    part = np.full(len(start), "#gap", dtype=object)
    part[end <= TIME_VAL_START * length] = "#train"
    part[(start >= TIME_VAL_START * length) & (end <= TIME_TEST_START * length)] = "#val"
    part[start >= TIME_TEST_START * length] = "#test"
    return np.char.add(arrays["recording"].astype(str), part.astype(str))


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

"""The window store: every recording's labelled windows, cut once through the front end and kept on disk
in shards that numpy and tf.data read piece by piece, so that no stage needs all windows in memory;
``WindowSet`` holds windows in memory, ``ShardedWindows`` reads shards lazily, and both count, label,
group, normalize and batch alike.

One entry per recording and front end, ``<cache>/windows/<key>/``; the key hashes the recording's identity
(a file's path and the sha256 of its bytes; HAPT's source and experiment), the front end's digest, the way
it is read (dataset.json's units, column mapping, merge and ignore) and ``STORE_VERSION``. Recordings are keyed one by one, so
adding recordings to a dataset windows only the new ones. An entry holds

- ``entry.json``: the recording's length (samples at the front end's rate), its own rate, its own label
  names (after merge and ignore; ``y`` indexes these), warnings, and per shard the windows, windows per
  label, and the per-channel sum and sum of squares of the samples (float64): normalization and class
  counts of any set of shards are sums, with no pass over the windows;
- per shard ``NNN.x.npy`` (n, window, channels) float32 (at most ``SHARD_WINDOWS`` windows), ``NNN.y.npy``
  (n,) int16 and ``NNN.start.npy`` (n,) int64, the first sample of each window.

``entry.json`` is written last, so a folder without it is cut again, and so is one whose files are not
regular files of the sizes it records (damage, or a FIFO planted in a shared cache: a miss, never a hang); writers sharing a cache (several
workers) write identical bytes with atomic renames. ``ShardedWindows`` is a set of shards read lazily.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from harlite.core.frontend import FrontEndSpec, features, window_starts
from harlite.core.protocol import UNLABELLED
from harlite.data.recordings import Recording
from harlite.errors import DataError, HarliteError
from harlite.io.cache import cache_dir
from harlite.io.files import atomic_write_bytes, write_json
from harlite.io.limits import read_bounded

STORE_VERSION = 3  # bump when the entries' layout or the windows they hold change
SHARD_WINDOWS = 4096  # at most this many windows per shard file (19 MB at 128 x 9)
ENTRY = "entry.json"
MAX_ENTRY_BYTES = 16 << 20  # entry.json: a few hundred bytes per shard
KINDS = ("x", "y", "start")  # a shard's files: NNN.x.npy, NNN.y.npy, NNN.start.npy


def window_labels(labels: np.ndarray | None, n: int, spec: FrontEndSpec) -> np.ndarray:
    """The class of each stream window, or UNLABELLED where its samples do not all share one class."""
    starts = window_starts(n, spec)
    if labels is None:
        return np.full(len(starts), UNLABELLED, dtype=np.int64)
    lab = np.asarray(labels)[starts[:, None] + np.arange(spec.window)[None, :]]
    pure = (lab == lab[:, :1]).all(axis=1) & (lab[:, 0] != UNLABELLED)
    return np.where(pure, lab[:, 0], UNLABELLED).astype(np.int64)


@dataclass(frozen=True)
class Shard:
    """Up to SHARD_WINDOWS windows of one recording on disk, labelled in a dataset's classes (``table`` maps
    the recording's own label index to the class), and the split unit (``group``) they belong to."""

    folder: Path
    name: str  # "000": files NNN.x.npy, NNN.y.npy, NNN.start.npy
    n: int
    offsets: tuple[int, int]  # bytes before the first window in x.npy and the first label in y.npy
    table: tuple[int, ...]
    group: str
    counts: tuple[int, ...]  # windows per class
    total: tuple[float, ...]  # per channel: sum and sum of squares of every sample of every window
    squares: tuple[float, ...]

    def path(self, kind: str) -> Path:
        return self.folder / f"{self.name}.{kind}.npy"

    def X(self) -> np.ndarray:
        """The shard's windows, read whole."""
        return np.load(self.path("x"), allow_pickle=False)

    def y(self) -> np.ndarray:
        """The shard's classes (indices into the dataset's labels)."""
        return np.asarray(self.table, np.int64)[np.load(self.path("y"), allow_pickle=False)]

    def starts(self) -> np.ndarray:
        return np.load(self.path("start"), allow_pickle=False)


@dataclass(frozen=True)
class Entry:
    """One recording's windows in the store, as ``entry.json`` describes them."""

    folder: Path
    length: int
    rate: float
    classes: tuple[str, ...]
    warnings: tuple[str, ...]
    parts: tuple[dict, ...]

    @property
    def n(self) -> int:
        return sum(p["n"] for p in self.parts)

    def shards(self, labels: tuple[str, ...], group: str) -> list[Shard]:
        """The entry's shards labelled in ``labels`` (each of the entry's own labels must be one of them)."""
        table = tuple(labels.index(name) for name in self.classes)
        shards = []
        for p in self.parts:
            counts = np.zeros(len(labels), np.int64)
            np.add.at(counts, list(table), p["counts"])
            shards.append(Shard(self.folder, p["name"], p["n"], tuple(p["offsets"]), table, group,
                                tuple(int(c) for c in counts), tuple(p["total"]), tuple(p["squares"])))  # fmt: skip
        return shards


def entry_folder(identity: str, frontend: FrontEndSpec, mapping: str) -> Path:
    """Where the store keeps the windows of the recording ``identity`` through ``frontend``."""
    key = json.dumps([identity, frontend.digest(), mapping, STORE_VERSION])
    return cache_dir() / "windows" / hashlib.sha256(key.encode()).hexdigest()[:24]


def read_entry(folder: Path) -> Entry | None:
    """The entry in ``folder``, or None when it is missing, incomplete or damaged."""
    try:
        meta = json.loads(read_bounded(folder / ENTRY, MAX_ENTRY_BYTES))
        entry = Entry(folder, int(meta["length"]), float(meta["rate"]), tuple(meta["classes"]),
                      tuple(meta["warnings"]), tuple(meta["parts"]))  # fmt: skip
        for part in entry.parts:
            for kind, size in zip(KINDS, part["bytes"], strict=True):
                st = os.stat(folder / f"{part['name']}.{kind}.npy")
                if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                    return None
        return entry
    except (HarliteError, OSError, ValueError, KeyError, TypeError):
        return None


def store_recording(folder: Path, rec: Recording, frontend: FrontEndSpec, rate: float) -> Entry:
    """Cut ``rec`` (at the front end's rate and raw sensors, labelled in its own classes; ``rate`` is the
    recording's original rate) into shards in ``folder``; returns its entry."""
    feats = features(rec.samples, frontend)
    y = window_labels(rec.labels, len(rec), frontend)
    starts = window_starts(len(rec), frontend)
    keep = np.flatnonzero(y != UNLABELLED)
    parts = []
    for number, first in enumerate(range(0, len(keep), SHARD_WINDOWS)):
        rows = keep[first : first + SHARD_WINDOWS]
        X = feats[starts[rows, None] + np.arange(frontend.window)[None, :]].astype(np.float32)
        name = f"{number:03d}"
        arrays = (X, y[rows].astype(np.int16), starts[rows].astype(np.int64))
        sizes = [_write_npy(folder / f"{name}.{kind}.npy", a) for kind, a in zip(KINDS, arrays)]
        offsets = [sizes[0] - X.nbytes, sizes[1] - arrays[1].nbytes]
        flat = X.reshape(-1, X.shape[-1]).astype(np.float64)
        parts.append({"name": name, "n": len(rows), "offsets": offsets, "bytes": sizes,
                      "counts": np.bincount(y[rows], minlength=len(rec.classes)).tolist(),
                      "total": flat.sum(axis=0).tolist(), "squares": np.square(flat).sum(axis=0).tolist()})  # fmt: skip
    meta = {"length": len(rec), "rate": rate, "classes": list(rec.classes), "warnings": list(rec.warnings),
            "parts": parts}  # fmt: skip
    write_json(folder / ENTRY, meta)
    return Entry(folder, len(rec), rate, tuple(rec.classes), tuple(rec.warnings), tuple(parts))


def _write_npy(path: Path, array: np.ndarray) -> int:
    """Write ``array`` as .npy atomically; returns the file's size in bytes."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    return len(buffer.getvalue())


Reader = Callable[[], tuple[Recording, float]]


def stored(jobs: list[tuple[Path, FrontEndSpec, Reader]], what: str) -> list[Entry]:
    """Each job's entry: read from the store, or cut now by calling its reader, one recording in memory at a
    time. A job is (entry folder, front end, reader returning the prepared recording and its own rate)."""
    entries: list[Entry | None] = [read_entry(folder) for folder, _, _ in jobs]
    missing = sum(e is None for e in entries)
    if missing:
        print(f"harlite: windowing {missing} recording{'s' * (missing > 1)} of {what} (cached afterwards)...",
              file=sys.stderr)  # fmt: skip
    for i, (folder, frontend, read) in enumerate(jobs):
        if entries[i] is None:
            rec, rate = read()
            entries[i] = store_recording(folder, rec, frontend, rate)
    return [e for e in entries if e is not None]


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

    def label_counts(self, n_classes: int) -> np.ndarray:
        """Windows per class index."""
        return np.bincount(self.y, minlength=n_classes)[:n_classes]

    def class_counts(self, labels: tuple[str, ...]) -> dict[str, int]:
        counts = self.label_counts(len(labels))
        return {name: int(counts[i]) for i, name in enumerate(labels)}

    @property
    def nbytes(self) -> int:
        return int(self.X.nbytes)

    @property
    def names(self) -> list[str]:
        """The groups (split units) of the windows, in order."""
        return list(dict.fromkeys(self.group.tolist()))

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The windows at ``indices`` (ascending)."""
        return self.X[np.asarray(indices, np.int64)]

    def pieces(self, n: int) -> list[WindowSet]:
        """At most ``n`` consecutive parts, in order (the windows of a parallel job each)."""
        bounds = np.linspace(0, len(self), max(1, min(n, len(self))) + 1).astype(int)
        return [WindowSet(self.X[a:b], self.y[a:b], self.group[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def batches(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(X, y) in order, at most ``size`` windows each."""
        for first in range(0, len(self), size):
            yield self.X[first : first + size], self.y[first : first + size]


@dataclass(eq=False)
class ShardedWindows:
    """Labelled windows in shards on disk: counts, labels, groups and normalization without reading the
    windows; ``batches`` reads them a shard at a time; ``X`` (and ``take``) load them all into memory."""

    shards: tuple[Shard, ...]
    window: int
    channels: int

    def __len__(self) -> int:
        return sum(s.n for s in self.shards)

    @property
    def nbytes(self) -> int:
        """Bytes the windows take in memory as float32."""
        return len(self) * self.window * self.channels * 4

    @property
    def names(self) -> list[str]:
        """The groups (split units) of the windows, in order."""
        return list(dict.fromkeys(s.group for s in self.shards))

    @cached_property
    def y(self) -> np.ndarray:
        return np.concatenate([s.y() for s in self.shards]) if self.shards else np.zeros(0, np.int64)

    @cached_property
    def group(self) -> np.ndarray:
        return np.concatenate([np.full(s.n, s.group) for s in self.shards]).astype(str) if self.shards \
            else np.zeros(0, str)  # fmt: skip

    @cached_property
    def X(self) -> np.ndarray:
        if not self.shards:
            return np.zeros((0, self.window, self.channels), np.float32)
        return np.concatenate([s.X() for s in self.shards])

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The windows at ``indices`` (ascending), read from their shards without loading the rest."""
        indices = np.asarray(indices, np.int64)
        if "X" in self.__dict__:
            return self.X[indices]
        ends = np.cumsum([s.n for s in self.shards])
        which = np.searchsorted(ends, indices, side="right")
        parts = []
        for i in np.unique(which):
            shard, first = self.shards[i], ends[i] - self.shards[i].n
            mapped = np.load(shard.path("x"), mmap_mode="r", allow_pickle=False)
            parts.append(np.array(mapped[indices[which == i] - first]))
            del mapped
        return np.concatenate(parts) if parts else np.zeros((0, self.window, self.channels), np.float32)

    def pieces(self, n: int) -> list[ShardedWindows]:
        """At most ``n`` runs of consecutive shards, in order (the windows of a parallel job each)."""
        bounds = np.linspace(0, len(self.shards), max(1, min(n, len(self.shards))) + 1).astype(int)
        return [ShardedWindows(self.shards[a:b], self.window, self.channels) for a, b in zip(bounds[:-1], bounds[1:])]

    def batches(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(X, y) in order, at most ``size`` windows each, one shard in memory at a time."""
        for shard in self.shards:
            X, y = shard.X(), shard.y()
            for first in range(0, shard.n, size):
                yield X[first : first + size], y[first : first + size]

    def of_groups(self, groups: tuple[str, ...] | list[str]) -> ShardedWindows:
        wanted = set(groups)
        return ShardedWindows(tuple(s for s in self.shards if s.group in wanted), self.window, self.channels)

    def take(self, mask: np.ndarray) -> WindowSet:
        """The windows where ``mask`` is true, in memory."""
        return WindowSet(self.X[mask], self.y[mask], self.group[mask])

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and standard deviation over every sample of every window (from the shards' sums)."""
        if not self.shards:
            raise DataError("no windows to take the normalization from.")
        samples = len(self) * self.window
        mean = np.sum([s.total for s in self.shards], axis=0) / samples
        var = np.sum([s.squares for s in self.shards], axis=0) / samples - mean**2
        return mean.astype(np.float32), np.maximum(np.sqrt(np.maximum(var, 0.0)), 1e-6).astype(np.float32)

    def label_counts(self, n_classes: int) -> np.ndarray:
        """Windows per class index (from the shards' counts)."""
        return np.sum([s.counts for s in self.shards], axis=0) if self.shards else np.zeros(n_classes, np.int64)

    def class_counts(self, labels: tuple[str, ...]) -> dict[str, int]:
        counts = self.label_counts(len(labels))
        return {name: int(counts[i]) for i, name in enumerate(labels)}

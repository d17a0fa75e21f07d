"""Recordings to labelled model windows, through the front end, with subject splits and a cache."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harlite.data.recordings import Recording, cached_arrays
from harlite.frontend import FrontEndSpec, cut_windows, features, window_starts
from harlite.protocol import LABELS, TEST_SUBJECTS, UNLABELLED

SOURCES = ("hapt", "uci-har")


@dataclass(frozen=True)
class WindowSet:
    """Labelled windows in physical units: X (n, window, C) float32, y (n,) class, subject (n,)."""

    X: np.ndarray
    y: np.ndarray
    subject: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(self.X[mask], self.y[mask], self.subject[mask])

    def of_subjects(self, subjects: tuple[int, ...] | list[int]) -> WindowSet:
        return self.take(np.isin(self.subject, list(subjects)))

    def split(
        self, test_subjects: tuple[int, ...] = TEST_SUBJECTS, n_val_subjects: int = 0, seed: int = 0
    ) -> tuple[WindowSet, WindowSet, WindowSet]:
        """(train, validation, test) by subject; validation subjects are drawn from the training ones."""
        train_subjects = sorted(set(self.subject.tolist()) - set(test_subjects))
        rng = np.random.default_rng(seed)
        val = sorted(rng.choice(train_subjects, size=n_val_subjects, replace=False).tolist()) if n_val_subjects else []
        fit = [s for s in train_subjects if s not in val]
        return self.of_subjects(fit), self.of_subjects(val), self.of_subjects(test_subjects)

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and standard deviation over every sample of every window."""
        flat = self.X.reshape(-1, self.X.shape[-1]).astype(np.float64)
        return flat.mean(axis=0).astype(np.float32), np.maximum(flat.std(axis=0), 1e-6).astype(np.float32)

    def class_counts(self) -> dict[str, int]:
        return {name: int((self.y == i).sum()) for i, name in enumerate(LABELS)}


def window_labels(labels: np.ndarray | None, n: int, spec: FrontEndSpec = FrontEndSpec()) -> np.ndarray:
    """The class of each stream window, or UNLABELLED where its samples do not all share one class."""
    starts = window_starts(n, spec)
    if labels is None:
        return np.full(len(starts), UNLABELLED, dtype=np.int64)
    lab = np.asarray(labels)[starts[:, None] + np.arange(spec.window)[None, :]]
    pure = (lab == lab[:, :1]).all(axis=1) & (lab[:, 0] != UNLABELLED)
    return np.where(pure, lab[:, 0], UNLABELLED).astype(np.int64)


def recording_windows(rec: Recording, spec: FrontEndSpec = FrontEndSpec()) -> tuple[np.ndarray, np.ndarray]:
    """All stream windows of one recording (m, window, C) and their labels (m,) (-1 where impure)."""
    if rec.rate != spec.rate_hz:
        raise ValueError(f"{rec.source}: rate {rec.rate} Hz, the front end expects {spec.rate_hz} Hz")
    return cut_windows(features(rec.samples, spec), spec), window_labels(rec.labels, len(rec), spec)


def windows_from_recordings(recordings: list[Recording], spec: FrontEndSpec = FrontEndSpec()) -> WindowSet:
    """Labelled windows of every recording, each recording run through the front end as one stream."""
    xs, ys, subjects = [], [], []
    for rec in recordings:
        X, y = recording_windows(rec, spec)
        keep = y != UNLABELLED
        xs.append(X[keep])
        ys.append(y[keep])
        subjects.append(np.full(int(keep.sum()), -1 if rec.subject is None else rec.subject, dtype=np.int64))
    if not xs:
        return WindowSet(np.zeros((0, spec.window, len(spec.channels)), np.float32), np.zeros(0, int), np.zeros(0, int))
    return WindowSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(subjects))


def load_windows(
    source: str = "hapt", path: str | Path | None = None, spec: FrontEndSpec = FrontEndSpec(), cache: bool = True
) -> WindowSet:
    """Labelled windows of a dataset; cached by the front end's digest and the source's identity.

    ``hapt`` is the embedded default (continuous recordings run through ``spec``); ``uci-har`` is the
    official dataset's pre-cut windows (from ``path``, a zip or folder; its own offline filtering, so
    ``spec`` only has to agree on window and channels).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
    if source == "uci-har":
        from harlite.data.uci_har import load_uci_har_windows

        X, y, subject = load_uci_har_windows(path)
        return WindowSet(X, y, subject)
    from harlite.data import hapt

    def build() -> dict[str, np.ndarray]:
        print("harlite: windowing the HAPT recordings (cached afterwards)...", file=sys.stderr)
        w = windows_from_recordings(hapt.load_hapt(cache=cache), spec)
        return {"X": w.X, "y": w.y, "subject": w.subject}

    identity = f"{hapt.source_identity()}|{spec.digest()}"
    arrays = cached_arrays("windows-hapt", identity, build) if cache else build()
    return WindowSet(arrays["X"], arrays["y"], arrays["subject"])

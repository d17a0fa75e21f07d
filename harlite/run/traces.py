"""A replayed recording's trace and the figures over traces: why windows are or are not pure, accuracy of
the top class and of the reported label, the unknown decision's figures and the stream metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harlite.core.frontend import FrontEndSpec, window_starts
from harlite.core.metrics import classification_metrics
from harlite.core.protocol import UNLABELLED
from harlite.core.stream import OTHER, pooled, recording_counts
from harlite.core.unknown import OTHER_LABEL, UNKNOWN
from harlite.data.recordings import Recording
from harlite.data.windows import window_labels

# Why a window has no label: the kinds counted in SimulationResult.window_counts.
PURE, STRADDLING, UNLABELLED_SAMPLES, NO_LABELS = "pure", "straddling", "unlabelled", "no_labels"


@dataclass
class Trace:
    """One recording's replay: per window its start sample, tensors, probabilities and predictions."""

    recording: Recording
    starts: np.ndarray  # (m,) first sample of each window
    probs: np.ndarray  # (m, classes) float32, dequantized for int8 runtimes
    raw: np.ndarray  # (m,) decision: argmax of probs, or classes (unknown)
    smoothed: np.ndarray  # (m,) the reported label after post-processing (classes: unknown)
    truth: np.ndarray  # (m,) class of a pure window, else UNLABELLED
    kind: np.ndarray  # (m,) PURE, STRADDLING, UNLABELLED_SAMPLES or NO_LABELS
    inputs: np.ndarray | None = None  # (m, window, C) int8 model inputs (int8 runtimes)
    outputs: np.ndarray | None = None  # (m, classes) int8 model outputs (int8 runtimes)
    features: np.ndarray | None = None  # (m, hidden + logits) int8 other outputs (int8 runtimes, unknown on)
    foreign: np.ndarray | None = None  # (samples,) bool: labelled with an activity the bundle does not know


def window_truth(rec: Recording, spec: FrontEndSpec) -> tuple[np.ndarray, np.ndarray]:
    """Each window's class where pure (else UNLABELLED) and why it is or is not pure."""
    truth = window_labels(rec.labels, len(rec), spec)
    kind = np.full(len(truth), NO_LABELS if rec.labels is None else PURE, dtype=object)
    if rec.labels is not None and len(truth):
        starts = window_starts(len(rec), spec)
        lab = np.asarray(rec.labels)[starts[:, None] + np.arange(spec.window)[None, :]]
        kind[(lab != lab[:, :1]).any(axis=1)] = STRADDLING
        kind[(lab == UNLABELLED).any(axis=1)] = UNLABELLED_SAMPLES
    return truth, kind


def window_counts(traces: list[Trace]) -> dict[str, int]:
    kinds = np.concatenate([tr.kind for tr in traces]) if traces else np.zeros(0, dtype=object)
    counts = {"total": len(kinds)}
    counts.update({k: int((kinds == k).sum()) for k in (PURE, STRADDLING, UNLABELLED_SAMPLES, NO_LABELS)})
    return counts


def replay_metrics(traces: list[Trace], labels: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro-F1 and confusion over pure windows of the top class (``raw``) and of the reported
    label (``smoothed``; a window reported unknown counts against its class, in an extra column)."""
    pure = np.concatenate([tr.kind == PURE for tr in traces])
    truth = np.concatenate([tr.truth for tr in traces])[pure]
    top = np.concatenate([tr.probs.argmax(axis=1) if len(tr.probs) else np.zeros(0, int) for tr in traces])[pure]
    reported = np.concatenate([tr.smoothed for tr in traces])[pure]
    smoothed = classification_metrics(truth, reported, (*labels, UNKNOWN))
    smoothed["per_class"].pop(UNKNOWN)
    smoothed["labels"] = list(labels)
    smoothed["macro_f1"] = float(np.mean([c["f1"] for c in smoothed["per_class"].values() if c["support"]]))
    return {"raw": classification_metrics(truth, top, labels), "smoothed": smoothed}


def foreign_samples(rec: Recording, labels: tuple[str, ...], merge: dict[str, str] | None,
                    ignore: tuple[str, ...]) -> np.ndarray | None:  # fmt: skip
    """Per sample: labelled with an activity the bundle does not know (and the dataset does not ignore),
    or "other" (``OTHER_LABEL``: none of the activities, even when the bundle learned it as a class)."""
    if rec.labels is None:
        return None
    merge = merge or {}
    names = [merge.get(name, name) for name in rec.classes]
    table = np.array([False] + [name == OTHER_LABEL or (name not in labels and name not in ignore) for name in names])
    return table[np.asarray(rec.labels, np.int64) + 1]


def stream_figures(traces: list[Trace], spec: FrontEndSpec, classes: int) -> dict[str, Any] | None:
    """Stream metrics of the reported labels over the recordings that have labels."""
    parts = []
    for tr in traces:
        if tr.recording.labels is None or not len(tr.starts):
            continue
        labels = np.where(tr.foreign, OTHER, np.asarray(tr.recording.labels, np.int64))
        parts.append(recording_counts(labels, tr.smoothed, tr.starts, spec.window, spec.hop, spec.rate_hz, classes))
    return pooled(parts) if parts else None


def unknown_figures(traces: list[Trace], classes: int, window: int) -> dict[str, Any]:
    """The unknown decision over the windows: the share of pure windows called unknown, the accuracy of
    the others, and the share of foreign windows (at least half of their samples labelled with an
    activity the bundle does not know) called unknown."""
    pure = np.concatenate([tr.kind == PURE for tr in traces])
    truth = np.concatenate([tr.truth for tr in traces])
    raw = np.concatenate([tr.raw for tr in traces])
    top = np.concatenate([tr.probs.argmax(axis=1) if len(tr.probs) else np.zeros(0, int) for tr in traces])
    share = [tr.foreign[tr.starts[:, None] + np.arange(window)].mean(axis=1) if tr.foreign is not None and len(tr.starts)
             else np.zeros(len(tr.starts)) for tr in traces]  # fmt: skip
    foreign = np.concatenate(share) >= 0.5 if share else np.zeros(0, bool)
    unknown = raw == classes
    pure &= ~foreign
    accepted = pure & ~unknown
    return {
        "windows": int(len(raw)),
        "unknown": int(unknown.sum()),
        "pure_windows": int(pure.sum()),
        "pure_unknown_rate": float(unknown[pure].mean()) if pure.any() else None,
        "accepted_accuracy": float((top[accepted] == truth[accepted]).mean()) if accepted.any() else None,
        "accuracy_all": float((top[pure] == truth[pure]).mean()) if pure.any() else None,
        "foreign_windows": int(foreign.sum()),
        "foreign_unknown_rate": float(unknown[foreign].mean()) if foreign.any() else None,
    }

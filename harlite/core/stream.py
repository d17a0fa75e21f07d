"""Stream metrics: how a stream of reported labels (one per window, reported at the window's end) compares
with a recording's sample labels. Definitions (docs/field.md has the reasons):

- reference label of a window: the label of most samples of its newest hop (ties: the newest);
- switches per minute: over the windows whose reference is an activity, changes of the reference (true)
  against changes of the reported label with unknown reports left out (predicted), per minute of recording;
- delay after a true change: for each segment of one activity (a maximal run of samples with its label,
  at least one window long, not a recording's first), the time from its first sample to the end of the
  first window reporting its label (windows ending within the segment or one hop after it); a change
  never reported is missed. Median and 90th percentile over the changes reported;
- segment F1: true segments (as above) against reported segments (maximal runs of one reported label,
  unknown left out, each spanning the newest hops of its windows; those mostly over unlabelled samples left
  out); a pair matches when the labels agree and they overlap by at least half of the longer; each
  segment matches at most once;
- unknown rate: reported unknown windows / windows, and the same among the pure windows (one activity).

Sample labels: a class 0..n-1, ``UNLABELLED`` (-1), or ``OTHER`` (-2: what should be unknown, such as
HAPT's postural transitions). Reported labels: 0..n-1, or n for unknown.
"""

from __future__ import annotations

from typing import Any

import numpy as np

UNLABELLED, OTHER = -1, -2
COUNTS = ("minutes", "windows", "true_switches", "switches", "missed", "true_segments", "segments", "matched",
          "unknown", "pure", "unknown_pure")  # fmt: skip


def runs(sequence: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, value) of the maximal runs of equal values."""
    sequence = np.asarray(sequence)
    if not len(sequence):
        return []
    edges = np.flatnonzero(np.diff(sequence)) + 1
    return [(int(s), int(e), int(sequence[s])) for s, e in zip(np.r_[0, edges], np.r_[edges, len(sequence)])]


def reference_labels(labels: np.ndarray, starts: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Per window the label of most samples of its newest hop (ties: the newest of them)."""
    out = np.empty(len(starts), np.int64)
    for i, start in enumerate(starts):
        newest = np.asarray(labels[start + window - hop : start + window])
        values, counts = np.unique(newest, return_counts=True)
        best = set(values[counts == counts.max()].tolist())
        out[i] = next(int(v) for v in newest[::-1] if int(v) in best)
    return out


def recording_counts(labels: np.ndarray, reported: np.ndarray, starts: np.ndarray, window: int, hop: int,
                     rate_hz: float, classes: int) -> dict[str, Any]:  # fmt: skip
    """The counts of one recording (sample ``labels``, per-window ``reported`` labels and ``starts``), to pool."""
    labels, reported, starts = np.asarray(labels), np.asarray(reported), np.asarray(starts)
    reference = reference_labels(labels, starts, window, hop)
    kept = reference >= 0
    said = reported[kept & (reported != classes)]
    ends = starts + window
    segments = [(s, e, v) for s, e, v in runs(labels) if v >= 0 and e - s >= window]
    delays, missed = [], 0
    for s, e, v in segments:
        if s == 0:
            continue
        after = np.flatnonzero((ends > s) & (ends <= e + hop))
        hit = after[reported[after] == v]
        if len(hit):
            delays.append(float(ends[hit[0]] - s) / rate_hz)
        else:
            missed += 1
    reported_segments = []
    for a, b, v in runs(reported):
        lo, hi = int(starts[a]) + window - hop, int(starts[b - 1]) + window
        if v != classes and np.mean(labels[lo:hi] == UNLABELLED) < 0.5:
            reported_segments.append((lo, hi, v))
    used, matched = set(), 0
    for s, e, v in segments:
        for k, (lo, hi, w) in enumerate(reported_segments):
            if k not in used and w == v and min(e, hi) - max(s, lo) >= 0.5 * max(e - s, hi - lo):
                used.add(k)
                matched += 1
                break
    lab = labels[starts[:, None] + np.arange(window)[None, :]] if len(starts) else np.zeros((0, window))
    pure = (lab == lab[:, :1]).all(axis=1) & (lab[:, 0] >= 0) if len(starts) else np.zeros(0, bool)
    return {"minutes": len(labels) / rate_hz / 60.0, "windows": len(reported),
            "true_switches": int(np.sum(reference[kept][1:] != reference[kept][:-1])),
            "switches": int(np.sum(said[1:] != said[:-1])), "delays": delays, "missed": missed,
            "true_segments": len(segments), "segments": len(reported_segments), "matched": matched,
            "unknown": int(np.sum(reported == classes)), "pure": int(pure.sum()),
            "unknown_pure": int(np.sum(pure & (reported == classes)))}  # fmt: skip


def pooled(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The stream metrics of several recordings' counts (``recording_counts``)."""
    total = {k: sum(p[k] for p in parts) for k in COUNTS}
    delays = [d for p in parts for d in p["delays"]]
    precision = total["matched"] / total["segments"] if total["segments"] else 0.0
    recall = total["matched"] / total["true_segments"] if total["true_segments"] else 0.0
    minutes = total["minutes"] or float("nan")
    return {
        "minutes": total["minutes"],
        "switches_per_min": total["switches"] / minutes if total["minutes"] else None,
        "true_switches_per_min": total["true_switches"] / minutes if total["minutes"] else None,
        "delay_median_s": float(np.median(delays)) if delays else None,
        "delay_p90_s": float(np.percentile(delays, 90)) if delays else None,
        "changes": len(delays) + total["missed"],
        "missed_changes": total["missed"],
        "segment_precision": precision,
        "segment_recall": recall,
        "segment_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "unknown_rate": total["unknown"] / total["windows"] if total["windows"] else None,
        "unknown_rate_pure": total["unknown_pure"] / total["pure"] if total["pure"] else None,
    }

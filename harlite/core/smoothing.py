"""Smoothing of per-window predictions, exactly as the firmware's C core does it.

``none`` keeps the raw prediction; ``majority:K`` is the most frequent class among the last K raw
predictions (fewer at the start), ties going to the tied class seen most recently; ``ema:ALPHA``
averages the dequantized probabilities, s_0 = p_0, s_t = ALPHA*p_t + (1-ALPHA)*s_{t-1}, in float32
without fused multiply-add, and predicts argmax s_t (ties: lowest index).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

MAJORITY_MAX = 32  # the C core's HARLITE_MAJORITY_MAX


@dataclass(frozen=True)
class SmoothingSpec:
    """A parsed smoothing spec: ``kind`` is none, majority (``k`` windows) or ema (``alpha``)."""

    kind: str = "none"
    k: int = 1
    alpha: float = 1.0

    def __str__(self) -> str:
        return {"none": "none", "majority": f"majority:{self.k}", "ema": f"ema:{self.alpha:g}"}[self.kind]


def parse_smoothing(text: str | SmoothingSpec) -> SmoothingSpec:
    """``none``, ``majority:K`` (1 <= K <= 32) or ``ema:ALPHA`` (0 < ALPHA <= 1); ValueError otherwise."""
    if isinstance(text, SmoothingSpec):
        return text
    kind, _, arg = str(text).strip().lower().partition(":")
    hint = (
        f"use none, majority:K (K an integer in 1..{MAJORITY_MAX}, e.g. majority:5) "
        "or ema:ALPHA (0 < ALPHA <= 1, e.g. ema:0.3)"
    )
    if kind == "none" and not arg:
        return SmoothingSpec()
    try:
        if kind == "majority":
            k = int(arg)
            if 1 <= k <= MAJORITY_MAX:
                return SmoothingSpec("majority", k=k)
        elif kind == "ema":
            alpha = float(arg)
            if 0.0 < alpha <= 1.0:
                return SmoothingSpec("ema", alpha=alpha)
    except ValueError:
        pass
    raise ValueError(f"bad smoothing {text!r}: {hint}")


def argmax_first(values: np.ndarray) -> int:
    """Index of the largest value, the lowest index on ties (as the C core's strict '>' loop)."""
    return int(np.argmax(values))


class Smoother:
    """Turns a stream of per-window probabilities into smoothed class predictions."""

    def __init__(self, spec: str | SmoothingSpec = "none") -> None:
        self.spec = parse_smoothing(spec)
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new stream)."""
        self._recent: deque[int] = deque(maxlen=self.spec.k)
        self._state: np.ndarray | None = None

    def update(self, probs: np.ndarray) -> int:
        """Add one window's class probabilities; returns the smoothed class index."""
        probs = np.asarray(probs, dtype=np.float32)
        if self.spec.kind == "ema":
            if self._state is None:
                self._state = probs.copy()
            else:
                alpha = np.float32(self.spec.alpha)
                self._state = alpha * probs + (np.float32(1.0) - alpha) * self._state
            return argmax_first(self._state)
        raw = argmax_first(probs)
        if self.spec.kind == "none":
            return raw
        self._recent.append(raw)
        return self._majority()

    def _majority(self) -> int:
        counts: dict[int, int] = {}
        for c in self._recent:
            counts[c] = counts.get(c, 0) + 1
        best = max(counts.values())
        # Ties: the tied class seen most recently.
        return next(c for c in reversed(self._recent) if counts[c] == best)


def smooth(probs: np.ndarray, spec: str | SmoothingSpec = "none") -> np.ndarray:
    """Smoothed predictions (m,) of a stream of probabilities (m, classes)."""
    smoother = Smoother(spec)
    return np.array([smoother.update(p) for p in probs], dtype=np.int64)

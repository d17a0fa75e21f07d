"""Post-processing of per-window decisions, exactly as the firmware's C core does it.

A window's decision is its class (the top probability) or, with a bundle's unknown decision, the extra
index ``n`` (n = the number of classes) for "unknown". Post-processing has three parts:

- smoothing: ``none`` keeps the decision; ``majority:K`` is the most frequent decision among the last K
  (fewer at the start), ties going to the tied one seen most recently; ``ema:ALPHA`` averages vectors of
  n + 1 scores, a known window's dequantized probabilities (0 for unknown) or an unknown window's one-hot
  of unknown, s_0 = v_0, s_t = ALPHA*v_t + (1-ALPHA)*s_{t-1} in float32 without fused multiply-add, and
  takes argmax s_t (ties: lowest index);
- hysteresis H (none and ema): the smoothed label replaces the reported one only if its score is at
  least the reported label's + H (in float32);
- dwell D: the reported label changes only after the same new label has been smoothed D windows in a row.

The first window reports its smoothed label. ``SmoothingSpec`` prints as ``ema:0.3 dwell:2 hysteresis:0.1``
(the defaults dwell:1, hysteresis:0 left out) and ``parse_smoothing`` reads that back.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

MAJORITY_MAX = 32  # the C core's HARLITE_MAJORITY_MAX
DWELL_MAX = 255


@dataclass(frozen=True)
class SmoothingSpec:
    """Parsed post-processing: ``kind`` none, majority (``k`` windows) or ema (``alpha``), ``dwell``, ``hysteresis``."""

    kind: str = "none"
    k: int = 1
    alpha: float = 1.0
    dwell: int = 1
    hysteresis: float = 0.0

    def __str__(self) -> str:
        text = {"none": "none", "majority": f"majority:{self.k}", "ema": f"ema:{self.alpha:g}"}[self.kind]
        text += f" dwell:{self.dwell}" if self.dwell != 1 else ""
        return text + (f" hysteresis:{self.hysteresis:g}" if self.hysteresis else "")

    def to_manifest(self) -> dict[str, object]:
        return {"smoothing": str(SmoothingSpec(self.kind, self.k, self.alpha)), "dwell": self.dwell,
                "hysteresis": self.hysteresis}  # fmt: skip

    @classmethod
    def from_manifest(cls, postprocess: dict[str, object]) -> SmoothingSpec:
        base = parse_smoothing(str(postprocess["smoothing"]))
        return parse_smoothing(
            f"{base} dwell:{postprocess.get('dwell', 1)} hysteresis:{postprocess.get('hysteresis', 0)}"
        )


def parse_smoothing(text: str | SmoothingSpec) -> SmoothingSpec:
    """``none``, ``majority:K`` (1 <= K <= 32) or ``ema:ALPHA`` (0 < ALPHA <= 1), optionally followed by
    ``dwell:D`` (1 <= D <= 255) and ``hysteresis:H`` (0 <= H < 1; not with majority); ValueError otherwise."""
    if isinstance(text, SmoothingSpec):
        return text
    hint = (f"use none, majority:K (K an integer in 1..{MAJORITY_MAX}) or ema:ALPHA (0 < ALPHA <= 1), optionally "
            f"with dwell:D (1..{DWELL_MAX}) and hysteresis:H (0 <= H < 1, none or ema), e.g. 'ema:0.3 dwell:2'")  # fmt: skip
    words = str(text).strip().lower().replace(",", " ").split()
    try:
        kind, _, arg = (words or [""])[0].partition(":")
        extra = dict(word.partition(":")[::2] for word in words[1:])
        if set(extra) - {"dwell", "hysteresis"} or len(extra) != len(words) - 1:
            raise ValueError
        dwell, hysteresis = int(extra.get("dwell", 1)), float(extra.get("hysteresis", 0))
        ok = 1 <= dwell <= DWELL_MAX and 0 <= hysteresis < 1 and not (kind == "majority" and hysteresis)
        if ok and kind == "none" and not arg:
            return SmoothingSpec(dwell=dwell, hysteresis=hysteresis)
        if ok and kind == "majority" and 1 <= int(arg) <= MAJORITY_MAX:
            return SmoothingSpec("majority", k=int(arg), dwell=dwell)
        if ok and kind == "ema" and 0.0 < float(arg) <= 1.0:
            return SmoothingSpec("ema", alpha=float(arg), dwell=dwell, hysteresis=hysteresis)
    except ValueError:
        pass
    raise ValueError(f"bad smoothing {text!r}: {hint}")


def argmax_first(values: np.ndarray) -> int:
    """Index of the largest value, the lowest index on ties (as the C core's strict '>' loop)."""
    return int(np.argmax(values))


class Smoother:
    """Turns a stream of per-window probabilities (and decisions) into reported labels."""

    def __init__(self, spec: str | SmoothingSpec = "none", classes: int | None = None) -> None:
        self.spec = parse_smoothing(spec)
        self.classes = classes
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new stream)."""
        self._recent: deque[int] = deque(maxlen=self.spec.k)
        self._state: np.ndarray | None = None
        self._reported: int | None = None
        self._pending, self._count = -1, 0

    def update(self, probs: np.ndarray, decision: int | None = None) -> int:
        """Add one window's class probabilities and its decision (the top class by default, or
        ``len(probs)`` for unknown); returns the label to report (``len(probs)`` = unknown)."""
        probs = np.asarray(probs, dtype=np.float32)
        n = len(probs)
        decision = argmax_first(probs) if decision is None else int(decision)
        scores = np.zeros(n + 1, np.float32)
        if decision == n:
            scores[n] = 1.0
        else:
            scores[:n] = probs
        if self.spec.kind == "majority":
            self._recent.append(decision)
            candidate, scores = self._majority(), None
        else:
            if self.spec.kind == "ema" and self._state is not None:
                alpha = np.float32(self.spec.alpha)
                scores = alpha * scores + (np.float32(1.0) - alpha) * self._state
            self._state = scores
            candidate = argmax_first(scores)
        return self._report(candidate, scores)

    def _report(self, candidate: int, scores: np.ndarray | None) -> int:
        """Dwell and hysteresis between the smoothed candidate and the reported label."""
        if self._reported is None:
            self._reported = candidate
        elif candidate != self._reported and (
            scores is None or scores[candidate] >= scores[self._reported] + np.float32(self.spec.hysteresis)
        ):
            self._count = self._count + 1 if candidate == self._pending else 1
            self._pending = candidate
            if self._count >= self.spec.dwell:
                self._reported, self._pending, self._count = candidate, -1, 0
        else:
            self._pending, self._count = -1, 0
        return self._reported

    def _majority(self) -> int:
        counts: dict[int, int] = {}
        for c in self._recent:
            counts[c] = counts.get(c, 0) + 1
        best = max(counts.values())
        # Ties: the tied class seen most recently.
        return next(c for c in reversed(self._recent) if counts[c] == best)


def smooth(probs: np.ndarray, spec: str | SmoothingSpec = "none", decisions: np.ndarray | None = None) -> np.ndarray:
    """Reported labels (m,) of a stream of probabilities (m, classes) and decisions (m,) (default: the
    top classes; ``classes`` = unknown)."""
    smoother = Smoother(spec)
    if decisions is None:
        return np.array([smoother.update(p) for p in probs], dtype=np.int64)
    return np.array([smoother.update(p, d) for p, d in zip(probs, decisions)], dtype=np.int64)

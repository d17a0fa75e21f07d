"""The "unknown" decision: is a window none of the model's activities? In integers, as the board does it.

Two scores of one window, each against its threshold (``manifest.unknown``; ``harlite.pipeline.unknown``
fits and calibrates them), and the window is unknown when either is above:

- **distance**: a class-conditional Mahalanobis distance (one covariance shared by the classes, the
  smallest over the classes) of u = [the model's hidden vector (the LSTM output) less its zero point, and
  per input channel the sum of the window's int8 values and the sum of its last quarter less that of its
  first]. The sums carry the posture (gravity) and its change within the window, which the front end
  already separates; the hidden vector carries what the model saw. Whitened coordinates
  ``z_j = (sum_k A_jk (u_k - c_k) + 2^(s_j - 1)) >> s_j`` (A upper triangular, int16 per row with shift
  s_j, int64 accumulator, arithmetic shift), clamped to +-2^23, then ``min_c sum_j (z_j - m_cj)^2`` (int64)
  in units of 2^-16 squared standard deviations.
- **energy**: -logsumexp of the logits, as ``log(top probability) - max logit`` from the int8 logits and
  probabilities: ``LOG_P[top + 128] - (max logit - logit zero point) * logit_mul`` in 2^-12 nats.

No floating point and no libm, so Python (int64 NumPy) and C (harlite_core.c) agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harlite.core.protocol import RESERVED_LABEL
from harlite.errors import BundleError

UNKNOWN = RESERVED_LABEL  # the label every runtime reports for a window that is none of the classes
OTHER_LABEL = "other"  # a class of this name (trained on "other" recordings) is always reported unknown
Z_BITS = 8  # whitened coordinates in 1/256 standard deviations
Z_CLAMP = 1 << 23
ENERGY_BITS = 12  # energies in 1/4096 nats
INT16_MAX = (1 << 15) - 1


def log_p_table() -> np.ndarray:
    """LOG_P[q + 128] = round(log((q + 128) / 256) * 2^ENERGY_BITS) for int8 probabilities q (q = -128: half a step)."""
    return np.round(np.log(np.maximum(np.arange(256), 0.5) / 256.0) * 2**ENERGY_BITS).astype(np.int64)


@dataclass(frozen=True)
class UnknownSpec:
    """``manifest.unknown`` parsed: the distance's integer parameters, the energy's, the two thresholds."""

    center: np.ndarray  # (d,) int64
    rows: np.ndarray  # (d, d) int64, upper triangular, each row fits int16
    shifts: np.ndarray  # (d,) int64
    means: np.ndarray  # (classes, d) int64
    distance_threshold: int
    hidden_zero_point: int
    logit_mul: int
    logit_zero_point: int
    energy_threshold: int
    other: int | None = None  # the class trained on "other" recordings: always unknown

    @property
    def features(self) -> int:
        return len(self.center)

    @classmethod
    def from_manifest(cls, unknown: dict[str, Any]) -> UnknownSpec:
        dist, energy = unknown["distance"], unknown["energy"]
        d = len(dist["center"])
        rows = np.zeros((d, d), np.int64)
        for j, row in enumerate(dist["rows"]):
            if len(row) != d - j:
                raise BundleError(f"manifest unknown.distance.rows[{j}] has {len(row)} values, not {d - j}; "
                                  "rebuild the bundle.")  # fmt: skip
            rows[j, j:] = row
        return cls(np.asarray(dist["center"], np.int64), rows, np.asarray(dist["shifts"], np.int64),
                   np.asarray(dist["means"], np.int64), int(dist["threshold"]), int(unknown["hidden"]["zero_point"]),
                   int(energy["logit_mul"]), int(unknown["logits"]["zero_point"]), int(energy["threshold"]),
                   unknown.get("other_class"))  # fmt: skip

    def to_manifest(self) -> dict[str, Any]:
        """The integer parameters as manifest fields (rows stored from the diagonal on)."""
        return {
            "distance": {"center": self.center.tolist(), "rows": [r[j:].tolist() for j, r in enumerate(self.rows)],
                         "shifts": self.shifts.tolist(), "means": self.means.tolist(),
                         "threshold": int(self.distance_threshold)},
            "energy": {"logit_mul": int(self.logit_mul), "threshold": int(self.energy_threshold)},
        }  # fmt: skip


def window_features(inputs: np.ndarray, hidden: np.ndarray, hidden_zero_point: int) -> np.ndarray:
    """u (m, units + 2C) int64 of int8 windows (m, window, C) and int8 hidden vectors (m, units)."""
    q = np.asarray(inputs).astype(np.int64)
    quarter = q.shape[1] // 4
    late_minus_early = q[:, q.shape[1] - quarter :].sum(1) - q[:, :quarter].sum(1)
    return np.concatenate([np.asarray(hidden).astype(np.int64) - hidden_zero_point, q.sum(1), late_minus_early], axis=1)


def distances(u: np.ndarray, spec: UnknownSpec) -> np.ndarray:
    """(m,) int64: the smallest class-conditional squared distance of each feature vector u (m, d)."""
    acc = (np.asarray(u, np.int64) - spec.center) @ spec.rows.T  # exact: |acc| < 2^40 by construction
    z = np.clip((acc + (np.int64(1) << (spec.shifts - 1))) >> spec.shifts, -Z_CLAMP, Z_CLAMP)
    diff = z[:, None, :] - spec.means[None, :, :]
    return (diff * diff).sum(axis=2).min(axis=1)


def energies(logits: np.ndarray, scores: np.ndarray, logit_mul: int, logit_zero_point: int) -> np.ndarray:
    """(m,) int64: -logsumexp of the logits in 2^-12 nats, from int8 logits and int8 probabilities (m, classes)."""
    top = np.asarray(scores).astype(np.int64).max(axis=1)
    return log_p_table()[top + 128] - (np.asarray(logits).astype(np.int64).max(axis=1) - logit_zero_point) * logit_mul


def decide(inputs: np.ndarray, scores: np.ndarray, hidden: np.ndarray, logits: np.ndarray,
           spec: UnknownSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(unknown (m,) bool, distance (m,) int64, energy (m,) int64) of m windows: their int8 inputs, the
    int8 class scores, hidden vectors and logits the model gave for them."""
    dist = distances(window_features(inputs, hidden, spec.hidden_zero_point), spec)
    energy = energies(logits, scores, spec.logit_mul, spec.logit_zero_point)
    unknown = (dist > spec.distance_threshold) | (energy > spec.energy_threshold)
    if spec.other is not None:
        unknown |= np.asarray(scores).argmax(axis=1) == spec.other
    return unknown, dist, energy

"""Fit and calibrate a bundle's "unknown" decision (``harlite.core.unknown``) on its int8 model's outputs.

The distance's Gaussians (one mean per class, one covariance shared by the classes, in standardized
features, ridge ``RIDGE`` x trace / d) are fitted on the training windows; both thresholds are calibrated
on the validation windows (the training windows when the split has none) so that at most ``rate`` of
those known windows are called unknown: the distance at a share q of them, the energy at q / 2 (it mainly
catches the model's own confusions), q the largest share whose union stays within ``rate``. The
measurements behind these choices are in docs/field.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harlite.core.unknown import (
    INT16_MAX,
    OTHER_LABEL,
    Z_BITS,
    UnknownSpec,
    decide,
    distances,
    energies,
    window_features,
)
from harlite.errors import DataError

DEFAULT_RATE = 0.02
RIDGE = 1e-3
ENERGY_SHARE = 0.5  # the energy's share of the validation quantile, against the distance's 1
MAX_SHIFT = 40


def fit_distance(u: np.ndarray, y: np.ndarray, n_classes: int) -> UnknownSpec:
    """The distance's integer parameters (thresholds unset) from training feature vectors u (n, d) int64
    and their classes y (n,)."""
    present = np.unique(y)
    if len(present) < 2 or len(u) <= u.shape[1]:
        raise DataError(f"the unknown decision needs training windows of at least two classes and more windows "
                        f"than features ({u.shape[1]}), got {len(u)}: record more, or pass --unknown-rate 0.")  # fmt: skip
    u = u.astype(np.float64)
    center = np.round(u.mean(axis=0))
    sigma = np.maximum(u.std(axis=0), 1.0)  # at least one step of the integer feature
    x = (u - center) / sigma
    class_means = np.zeros((n_classes, u.shape[1]))
    for c in present:
        class_means[c] = x[y == c].mean(axis=0)
    residual = x - class_means[y]
    d = u.shape[1]
    cov = residual.T @ residual / len(x)
    cov += RIDGE * max(np.trace(cov), 1e-12) / d * np.eye(d)
    lower = np.linalg.cholesky(np.linalg.inv(cov))  # inv(cov) = L L^T: the squared distance is |L^T x|^2
    a = np.triu(lower.T / sigma[None, :]) * 2.0**Z_BITS
    peak = np.maximum(np.abs(a).max(axis=1), 1e-30)
    shifts = np.clip(np.floor(np.log2(INT16_MAX / peak)), 1, MAX_SHIFT).astype(np.int64)
    rows = np.clip(np.round(a * 2.0 ** shifts[:, None]), -INT16_MAX, INT16_MAX).astype(np.int64)
    spec = UnknownSpec(center.astype(np.int64), rows, shifts, np.zeros((n_classes, d), np.int64), 0, 0, 0, 0, 0)
    # the class means in the integer whitened space, so that rounding is the same for means and windows
    z = _whitened(u.astype(np.int64), spec)
    means = np.zeros((n_classes, d), np.int64)
    for c in present:
        means[c] = np.round(z[y == c].mean(axis=0)).astype(np.int64)
    for c in set(range(n_classes)) - set(present.tolist()):  # a class without training windows: never nearest
        means[c] = means[present[0]]
    return UnknownSpec(spec.center, rows, shifts, means, 0, 0, 0, 0, 0)


def _whitened(u: np.ndarray, spec: UnknownSpec) -> np.ndarray:
    acc = (u - spec.center) @ spec.rows.T
    return (acc + (np.int64(1) << (spec.shifts - 1))) >> spec.shifts


def union_thresholds(dist: np.ndarray, energy: np.ndarray, rate: float) -> tuple[int, int, float]:
    """(distance threshold, energy threshold, share flagged) for known windows' scores: the distance at the
    largest share q, the energy at q * ENERGY_SHARE, whose union flags at most ``rate`` of the windows."""
    n = len(dist)
    allowed = int(np.floor(rate * n + 1e-9))
    ds, es = np.sort(dist), np.sort(energy)
    best = (int(ds[-1]), int(es[-1]))
    for k in range(allowed + 1):  # k windows allowed above the distance threshold
        td, te = int(ds[n - 1 - k]), int(es[n - 1 - int(k * ENERGY_SHARE)])
        if np.count_nonzero((dist > td) | (energy > te)) <= allowed:
            best = (td, te)
    flagged = float(np.mean((dist > best[0]) | (energy > best[1]))) if n else 0.0
    return best[0], best[1], flagged


def calibrate(train: dict[str, np.ndarray], val: dict[str, np.ndarray], n_classes: int, rate: float,
              quant: dict[str, dict[str, Any]], other: int | None = None) -> dict[str, Any]:  # fmt: skip
    """``manifest.unknown`` from the int8 model's outputs on the training and validation windows.

    ``train`` and ``val`` hold ``inputs`` (n, window, C) int8, ``scores``, ``hidden``, ``logits`` (int8
    model outputs) and ``y`` (classes); ``quant`` the hidden and logits outputs' ``{scale, zero_point}``;
    ``other`` the class trained on "other" recordings (always unknown; left out of the Gaussians). An
    empty ``val`` calibrates on ``train``.
    """
    if not 0 <= rate < 1:
        raise DataError(f"--unknown-rate must be in [0, 1), got {rate}.")
    hidden_zero, logit_zero = int(quant["hidden"]["zero_point"]), int(quant["logits"]["zero_point"])
    logit_mul = int(round(float(quant["logits"]["scale"]) * 2**12))
    keep = train["y"] != other if other is not None else np.ones(len(train["y"]), bool)
    u = window_features(train["inputs"][keep], train["hidden"][keep], hidden_zero)
    base = fit_distance(u, train["y"][keep], n_classes)
    on = val if len(val["y"]) else train
    known = on["y"] != other if other is not None else np.ones(len(on["y"]), bool)
    spec = UnknownSpec(base.center, base.rows, base.shifts, base.means, 0, hidden_zero, logit_mul, logit_zero, 0)
    dist = distances(window_features(on["inputs"][known], on["hidden"][known], hidden_zero), spec)
    energy = energies(on["logits"][known], on["scores"][known], logit_mul, logit_zero)
    td, te, flagged = union_thresholds(dist, energy, rate)
    spec = UnknownSpec(
        base.center, base.rows, base.shifts, base.means, td, hidden_zero, logit_mul, logit_zero, te, other
    )
    unknown, _, _ = decide(on["inputs"][known], on["scores"][known], on["hidden"][known], on["logits"][known], spec)
    return {
        "method": "mahalanobis+energy",
        "rate": rate,
        "calibrated_on": "validation" if len(val["y"]) else "training",
        "windows": int(known.sum()),
        "rejected": float(unknown.mean()) if len(unknown) else 0.0,
        "hidden": {k: quant["hidden"][k] for k in ("scale", "zero_point")},
        "logits": {k: quant["logits"][k] for k in ("scale", "zero_point")},
        **({"other_class": other} if other is not None else {}),
        **spec.to_manifest(),
    }


def unknown_for_model(manifest: dict[str, Any], int8: bytes, split: Any, rate: float = DEFAULT_RATE) -> dict[str, Any]:
    """``manifest.unknown`` for the three-output int8 model ``int8`` described by ``manifest`` (labels,
    normalization, quantization), fitted on ``split.train`` and calibrated on ``split.val`` (LiteRT)."""
    from harlite.run.runtimes import runtime_for
    from harlite.tf import litert_interpreter

    outputs = litert_interpreter(int8, num_threads=1).get_output_details()
    if len(outputs) < 3:
        raise DataError("the int8 model has no hidden-vector and logits outputs (converted before harlite's unknown "
                        "decision): convert its model.keras again, e.g. harlite convert BUNDLE/model.keras --out NEW "
                        "(same weights, same probabilities).")  # fmt: skip
    quant = {name: {"scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1])}
             for name, d in zip(("hidden", "logits"), outputs[1:3])}  # fmt: skip
    model = runtime_for(manifest, "litert-int8", int8, "model_int8.tflite")

    def part(windows: Any) -> dict[str, np.ndarray]:
        inputs, scores, hidden, logits = model.unknown_features(windows.X) if len(windows) else (np.zeros(0),) * 4
        return {"inputs": inputs, "scores": scores, "hidden": hidden, "logits": logits, "y": windows.y}

    labels = list(manifest["labels"])
    other = labels.index(OTHER_LABEL) if OTHER_LABEL in labels else None
    return calibrate(part(split.train), part(split.val), len(labels), rate, quant, other)

"""The parity check: does the model behave in LiteRT, on TFLite Micro and in the C engine as it did in Keras?

The same windows (the test subjects' by default) run through the float Keras model, LiteRT float32,
LiteRT int8, TFLite Micro int8 and harlite's C engine (the code a board runs without TFLM, compiled
for this host). For each pair of runtimes: top-1 agreement, the max and mean absolute difference of
the (dequantized) probabilities and the windows that differ most; for each runtime its accuracy.
Thresholds decide pass or fail:

- TFLM vs LiteRT int8 top-1 agreement (the board's interpreter against the reference one);
- the C engine's int8 outputs equal TFLM's, every value of every window (it is built to be bit-exact);
- the accuracy points int8 (LiteRT and TFLM) may lose against Keras float;
- LiteRT float32 vs Keras top-1 agreement (a broken export, or an LSTM state not reset, shows here:
  two interpreters can agree with each other and both be wrong).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.loader import Bundle, load_bundle
from harlite.bundle.run_folder import ModelInput
from harlite.core.metrics import classification_metrics
from harlite.data.windows import DataSpec, Split, WindowSet, load_split
from harlite.errors import HarliteError
from harlite.io.files import MARKER, atomic_write_text, check_replaceable, write_json
from harlite.io.locks import folder_lock
from harlite.run.runtimes import open_runtime

RUNTIMES = ("keras", "litert-float32", "litert-int8", "tflm", "c")
NAMES = {"keras": "Keras float", "litert-float32": "LiteRT float32", "litert-int8": "LiteRT int8",
         "tflm": "TFLM int8", "c": "C engine int8"}  # fmt: skip
# The pairs compared: each runtime against Keras, the board's interpreters against their references.
PAIRS = (("litert-float32", "keras"), ("litert-int8", "keras"), ("tflm", "keras"), ("c", "keras"),
         ("tflm", "litert-int8"), ("c", "tflm"))  # fmt: skip
PARTS = ("test", "train", "all")
WORST = 5
# Agreements and drops are compared with this slack, so that 1.0000000000000009 is not "over by 0.00 points".
SLACK = 1e-9


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits; agreements are fractions, the accuracy drop is in percentage points."""

    min_tflm_agreement: float = 0.99
    max_int8_drop: float = 1.0
    min_float_agreement: float = 0.999


def select_windows(split: Split, part: str = "test", limit: int | None = None) -> WindowSet:
    """The test windows, the training ones (``pool``: training and validation) or all; with ``limit``,
    that many spread evenly over them (every class, every subject)."""
    if part not in PARTS:
        raise HarliteError(f"unknown split {part!r}: choose one of {', '.join(PARTS)}.")
    if part == "all":
        both = (split.pool, split.test)
        windows = WindowSet(*(np.concatenate([getattr(w, f) for w in both]) for f in ("X", "y", "group")))
    else:
        windows = split.test if part == "test" else split.pool
    if not len(windows):
        raise HarliteError(f"no windows in the {part} split: check the data source.")
    if limit is not None and limit < len(windows):
        if limit < 1:
            raise HarliteError(f"--limit must be at least 1, got {limit}.")
        windows = windows.take(np.linspace(0, len(windows) - 1, limit).round().astype(int))
    return windows


def compare(a: np.ndarray, b: np.ndarray, windows: WindowSet) -> dict[str, Any]:
    """Top-1 agreement, max/mean absolute probability difference and the windows differing most."""
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64)).max(axis=1)
    pa, pb = a.argmax(1), b.argmax(1)
    # disagreements first, then the largest difference
    order = np.lexsort((-diff, pa == pb))[:WORST]
    return {
        "agreement": float((pa == pb).mean()),
        "disagreements": int((pa != pb).sum()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(np.abs(a.astype(np.float64) - b).mean()),
        "worst": [_window(i, windows, [int(pa[i]), int(pb[i])], float(diff[i])) for i in order],
    }


def _window(i: int, windows: WindowSet, pred: list[int], max_abs_diff: float) -> dict[str, Any]:
    return {"window": int(i), "group": str(windows.group[i]), "label": int(windows.y[i]), "pred": pred,
            "max_abs_diff": max_abs_diff}  # fmt: skip


def check(report: dict[str, Any], thresholds: Thresholds) -> list[dict[str, Any]]:
    """Each threshold's value, limit and verdict, with a message naming the breach and its size."""
    pairs, runtimes = report["pairs"], report["runtimes"]
    checks = [
        _check("TFLM vs LiteRT int8 top-1 agreement", pairs["tflm|litert-int8"]["agreement"],
               thresholds.min_tflm_agreement, at_least=True),
        _check("C engine vs TFLM int8 largest output difference (LSB)", pairs["c|tflm"]["max_abs_diff"]
               / report["output_scale"], 0.0, at_least=False, unit="LSB"),
        _check("LiteRT float32 vs Keras top-1 agreement", pairs["litert-float32|keras"]["agreement"],
               thresholds.min_float_agreement, at_least=True),
    ]  # fmt: skip
    float_acc = runtimes["keras"]["accuracy"]
    for kind in ("litert-int8", "tflm"):
        drop = 100 * (float_acc - runtimes[kind]["accuracy"])
        checks.append(_check(f"{NAMES[kind]} accuracy drop vs Keras float (points)", drop,
                             thresholds.max_int8_drop, at_least=False))  # fmt: skip
    return checks


def _check(name: str, value: float, limit: float, at_least: bool, unit: str = "points") -> dict[str, Any]:
    passed = value >= limit - SLACK if at_least else value <= limit + SLACK
    if at_least:
        shown = f"{100 * value:.2f}% (minimum {100 * limit:.2f}%)"
        gap = f"short by {100 * (limit - value):.2f} points"
    else:
        shown = f"{value:.2f} (maximum {limit:.2f})"
        gap = f"over by {value - limit:.2f} {unit}"
    message = f"{name}: {shown}" + ("" if passed else f", {gap}")
    return {"name": name, "value": value, "limit": limit, "passed": bool(passed), "message": message}


def parity(
    bundle: Bundle | str | Path,
    part: str = "test",
    limit: int | None = None,
    thresholds: Thresholds = Thresholds(),
    split: Split | None = None,
    log: Callable[[str], None] | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """Run the windows through every runtime of ``bundle`` and compare; returns the report.

    ``part`` is test, train or all of ``split``, which defaults to the bundle's own data (or the dataset
    folder ``data``, split as the bundle's was); ``log`` gets progress lines. ``bundle`` is a loaded
    ``Bundle`` or a bundle's path (loaded and verified here).
    """
    say = log or (lambda message: None)
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    manifest = bundle.manifest
    if split is None:
        model_input = ModelInput.from_dict(manifest)
        spec = (
            model_input.data if data is None else DataSpec.from_dict({**model_input.data.to_dict(), "data": str(data)})
        )
        split = load_split(spec, model_input.protocol)
    windows = select_windows(split, part, limit)
    say(f"parity: {len(windows)} windows of the {part} split through {', '.join(NAMES.values())}")
    probs, runtimes = {}, {}
    for kind in RUNTIMES:
        start = time.perf_counter()
        runtime = open_runtime(bundle, kind)
        probs[kind] = runtime.predict(windows.X)
        metrics = classification_metrics(windows.y, probs[kind].argmax(1), manifest["labels"])
        runtimes[kind] = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                          "ms_per_window": runtime.ms_per_invoke}  # fmt: skip
        say(f"parity: {NAMES[kind]:15s} accuracy {metrics['accuracy']:.2%} on {len(windows)} windows "
            f"({runtime.ms_per_invoke:.3f} ms/window, {time.perf_counter() - start:.1f} s)")  # fmt: skip
    pairs = {f"{a}|{b}": compare(probs[a], probs[b], windows) for a, b in PAIRS}
    report = {
        "note": f"{MARKER} parity; do not edit.",
        "bundle": str(bundle.root),
        "model_sha256": bundle.entry("int8")["sha256"],
        "split": part,
        "groups": sorted(set(windows.group.tolist())),
        "windows": len(windows),
        "labels": list(manifest["labels"]),
        "output_scale": float(manifest["quantization"]["output"]["scale"]),
        "runtimes": runtimes,
        "pairs": pairs,
        "thresholds": asdict(thresholds),
    }
    report["checks"] = check(report, thresholds)
    report["passed"] = all(c["passed"] for c in report["checks"])
    return report


def markdown(report: dict[str, Any]) -> str:
    """parity.md: the verdicts, each runtime's accuracy, each pair, the worst windows."""
    labels = report["labels"]
    lines = [
        f"<!-- {report['note']} -->",
        "# Parity: Keras vs LiteRT vs TFLite Micro vs the C engine",
        "",
        (
            f"Bundle `{report['bundle']}` (int8 sha256 `{report['model_sha256']}`), {report['windows']} windows "
            f"of the {report['split']} split ({len(report['groups'])} groups)."
        ),
        "",
        f"**{'PASSED' if report['passed'] else 'FAILED'}**",
        "",
        *[f"- {'ok' if c['passed'] else 'FAILED'}: {c['message']}" for c in report["checks"]],
        "",
        "| runtime | accuracy | macro-F1 | host ms/window |",
        "| --- | --- | --- | --- |",
        *[f"| {NAMES[k]} | {r['accuracy']:.2%} | {r['macro_f1']:.4f} | {r['ms_per_window']:.3f} |"
          for k, r in report["runtimes"].items()],
        "",
        "| pair | top-1 agreement | disagreements | max abs diff | mean abs diff |",
        "| --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for key, p in report["pairs"].items():
        a, b = key.split("|")
        lines.append(f"| {NAMES[a]} vs {NAMES[b]} | {p['agreement']:.2%} | {p['disagreements']} | "
                     f"{p['max_abs_diff']:.4f} | {p['mean_abs_diff']:.5f} |")  # fmt: skip
    for key in ("tflm|litert-int8", "tflm|keras"):
        a, b = key.split("|")
        lines += ["", f"Worst windows, {NAMES[a]} vs {NAMES[b]}:", "",
                  f"| window | group | label | {NAMES[a]} | {NAMES[b]} | max abs diff |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for w in report["pairs"][key]["worst"]:
            a_pred, b_pred = (labels[p] for p in w["pred"])
            lines.append(f"| {w['window']} | {w['group']} | {labels[w['label']]} | {a_pred} | {b_pred} | "
                         f"{w['max_abs_diff']:.4f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def run(
    bundle: str | Path, out: str | Path | None = None, force: bool = False, **options: Any
) -> tuple[dict[str, Any], list[Path]]:
    """What ``harlite parity`` does: ``parity(bundle, **options)``, and with ``out`` its reports written
    there (``write_reports``), the folder locked for the whole run; returns the report and the files."""
    if out is None:
        return parity(bundle, **options), []
    with folder_lock(out):
        report_files(out, force)
        report = parity(bundle, **options)
        return report, write_reports(report, out, force)


def report_files(out: str | Path, force: bool = False) -> list[Path]:
    """parity.json and parity.md in ``out``, which may be replaced (harlite wrote them, or ``force``)."""
    paths = [Path(out) / "parity.json", Path(out) / "parity.md"]
    for path in paths:
        check_replaceable(path, force)
    return paths


def write_reports(report: dict[str, Any], out: str | Path, force: bool = False) -> list[Path]:
    """Write parity.json and parity.md into ``out``; a file harlite did not write needs ``force``."""
    with folder_lock(out):
        paths = report_files(out, force)
        write_json(paths[0], report)
        atomic_write_text(paths[1], markdown(report))
    return paths

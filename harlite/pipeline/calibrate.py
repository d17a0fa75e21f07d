"""Calibrate a bundle for the field: its unknown decision and its stream post-processing.

``choose_postprocess`` replays the validation recordings once (the int8 model in LiteRT: the board's
decisions, bit for bit) and tries every post-processing of ``GRID`` on the decisions: among the settings
whose label switches per minute are at most ``SWITCH_TOLERANCE`` times the truth's, those whose median
delay after a true change is within one hop of the shortest, the best segment F1 (when none switches that
rarely: the best segment F1). Definitions of the metrics: ``harlite.core.stream``.

``calibrate`` (``harlite calibrate``) does both for an existing bundle and rewrites its manifest and C
sources; ``harlite build`` runs the same steps.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.loader import Bundle, load_bundle
from harlite.bundle.manifest import MANIFEST
from harlite.core.smoothing import SmoothingSpec, parse_smoothing, smooth
from harlite.core.stream import OTHER, pooled, recording_counts
from harlite.data.recordings import Recording
from harlite.data.windows import load_split
from harlite.errors import DataError
from harlite.io.files import write_json
from harlite.io.locks import folder_lock
from harlite.pipeline.c_sources import write_sources
from harlite.pipeline.unknown import DEFAULT_RATE, unknown_for_model
from harlite.run.simulate import simulate

SMOOTHINGS = ("none", "majority:3", "majority:4", "majority:5", "majority:7", "majority:9", "ema:0.6", "ema:0.5",
              "ema:0.4", "ema:0.3", "ema:0.25", "ema:0.2", "ema:0.15")  # fmt: skip
DWELLS, HYSTERESES = (1, 2, 3, 4), (0.0, 0.1, 0.2, 0.3)
GRID = tuple(parse_smoothing(f"{s} dwell:{d} hysteresis:{h}") for s, d, h in itertools.product(SMOOTHINGS, DWELLS, HYSTERESES)
             if not (s.startswith("majority") and h))  # fmt: skip
SWITCH_TOLERANCE = 1.10


def choose_postprocess(bundle: Bundle, recordings: list[Recording], log: Callable[[str], None] | None = None,
                       grid: tuple[SmoothingSpec, ...] = GRID) -> dict[str, Any]:  # fmt: skip
    """``manifest.postprocess`` chosen on ``recordings`` (see the module docstring), with the figures of
    the choice and of no post-processing under ``validation``."""
    result = simulate(bundle, recordings, "litert", "none", log)
    spec, classes = result.spec, len(result.labels)
    traces = [tr for tr in result.traces if tr.recording.labels is not None and len(tr.starts)]
    if not traces:
        raise DataError("stream calibration needs labelled validation recordings: the split has none; pass "
                        "--smoothing to choose the post-processing yourself.")  # fmt: skip
    truths = [labels_with_foreign(tr) for tr in traces]

    def metrics(candidate: SmoothingSpec) -> dict[str, Any]:
        parts = [recording_counts(truth, smooth(tr.probs, candidate, tr.raw), tr.starts, spec.window, spec.hop,
                                  spec.rate_hz, classes) for tr, truth in zip(traces, truths)]  # fmt: skip
        return pooled(parts)

    tried = [(candidate, metrics(candidate)) for candidate in grid]
    usable = [(c, m) for c, m in tried if m["changes"] and m["delay_median_s"] is not None]
    calm = [(c, m) for c, m in usable if m["switches_per_min"] <= SWITCH_TOLERANCE * m["true_switches_per_min"]]
    if calm:
        fastest = min(m["delay_median_s"] for _, m in calm)
        near = [(c, m) for c, m in calm if m["delay_median_s"] <= fastest + spec.hop / spec.rate_hz]
        chosen, figures = max(near, key=lambda cm: (cm[1]["segment_f1"], -cm[1]["delay_median_s"]))
        rule = (
            f"switches at most {SWITCH_TOLERANCE:g}x the truth's, delay within one hop of the shortest, best segment F1"
        )
    elif usable:
        chosen, figures = max(usable, key=lambda cm: cm[1]["segment_f1"])
        rule = f"no setting switches at most {SWITCH_TOLERANCE:g}x as often as the truth: the best segment F1"
    else:
        chosen, figures, rule = SmoothingSpec(), metrics(SmoothingSpec()), "the recordings have no activity changes"
    return {**chosen.to_manifest(), "rule": rule, "recordings": len(traces), "settings_tried": len(tried),
            "validation": figures, "validation_without": dict(tried)[SmoothingSpec()] if SmoothingSpec() in grid
            else metrics(SmoothingSpec())}  # fmt: skip


def labels_with_foreign(tr: Any) -> np.ndarray:
    """A trace's sample labels with samples of activities the bundle does not know as ``OTHER``."""
    labels = np.asarray(tr.recording.labels, np.int64)
    return labels if tr.foreign is None else np.where(tr.foreign, OTHER, labels)


def calibrate(bundle_dir: str | Path, unknown_rate: float | None = DEFAULT_RATE, stream: bool = True,
              split: Any = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Refit and recalibrate the unknown decision of the bundle ``bundle_dir`` for ``unknown_rate`` (None:
    keep it; 0: remove it) and, with ``stream``, choose its post-processing on the validation recordings;
    rewrites its manifest and C sources. ``split`` defaults to the bundle's own data. Returns the manifest."""
    say = log or (lambda message: print(f"harlite calibrate: {message}", file=sys.stderr))
    bundle_dir = Path(bundle_dir)
    with folder_lock(bundle_dir):
        bundle = load_bundle(bundle_dir)
        manifest = dict(bundle.manifest)
        dataset = manifest.get("dataset") or {}
        if split is None:
            from harlite.bundle.run_folder import read_model_input

            model_input = read_model_input(bundle_dir)
            split = load_split(model_input.data, model_input.protocol)
        if unknown_rate == 0:
            manifest.pop("unknown", None)
        elif unknown_rate is not None:
            manifest["unknown"] = unknown_for_model(manifest, bundle.read("int8"), split, unknown_rate)
            say(f"unknown decision: {manifest['unknown']['rejected']:.2%} of {manifest['unknown']['windows']} "
                f"{manifest['unknown']['calibrated_on']} windows called unknown")  # fmt: skip
        manifest.pop("postprocess", None)
        write_json(bundle_dir / MANIFEST, manifest)
        if stream:
            recordings = split.val_recordings()
            if not recordings:
                raise DataError(f"{bundle_dir} was trained on data without validation recordings "
                                f"(split: {dataset.get('split', '?')}): there is nothing to calibrate the stream on.")  # fmt: skip
            manifest["postprocess"] = choose_postprocess(load_bundle(bundle_dir, verify=False), recordings)
            chosen = manifest["postprocess"]
            figures = chosen["validation"]
            say(f"post-processing {SmoothingSpec.from_manifest(chosen)} ({chosen['rule']}): "
                f"{figures['switches_per_min']:.2f} switches/min (true {figures['true_switches_per_min']:.2f}), "
                f"delay {figures['delay_median_s']:.1f} s median, segment F1 {figures['segment_f1']:.3f}")  # fmt: skip
            write_json(bundle_dir / MANIFEST, manifest)
        return write_sources(bundle_dir, measure=False)

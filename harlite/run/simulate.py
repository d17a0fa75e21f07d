"""The simulator: replay recordings through the board's path and see what the model would have said.

Each recording is a stream, fed hop-sized block by block (as an IMU FIFO delivers samples) into the
streaming front end, which emits a window every hop; each window is quantized with the bundle's input
parameters, classified by the chosen runtime (TFLite Micro by default, the board's runtime, with the
LSTM state reset before every window), called unknown when the bundle's unknown decision says so
(``harlite.core.unknown``) and post-processed as the firmware does (``harlite.core.smoothing``: by default
the bundle's calibrated ``postprocess``). The result is a timeline of windows, metrics over the windows
whose samples all carry one activity, the unknown decision's figures, stream metrics
(``harlite.core.stream``) and the host's cost. ``rotation`` replays the recordings as if the device had
been mounted turned (``harlite.core.orientation``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.loader import Bundle, load_bundle
from harlite.core.frontend import FrontEndSpec, StreamingFrontEnd, quantize, window_starts
from harlite.core.orientation import rotate_samples, rotation_matrix
from harlite.core.protocol import UNLABELLED
from harlite.core.smoothing import SmoothingSpec, parse_smoothing, smooth
from harlite.core.unknown import OTHER_LABEL, UNKNOWN, UnknownSpec, decide
from harlite.data.datasets import load_dataset
from harlite.data.hapt import load_hapt
from harlite.data.layout import Layout, Units
from harlite.data.recordings import Recording, read_csv
from harlite.errors import HarliteError
from harlite.run.processes import in_processes
from harlite.run.runtimes import open_runtime
from harlite.run.traces import (
    PURE,
    Trace,
    foreign_samples,
    replay_metrics,
    stream_figures,
    unknown_figures,
    window_counts,
    window_truth,
)

# --runtime name -> harlite.run.runtimes kind
RUNTIMES = {"tflm": "tflm", "c": "c", "litert": "litert-int8", "keras": "keras"}


@dataclass
class SimulationResult:
    """Everything a replay found: traces, metrics over pure windows, window counts, host cost."""

    bundle: Bundle
    runtime: str
    smoothing: SmoothingSpec
    labels: tuple[str, ...]
    spec: FrontEndSpec
    traces: list[Trace]
    latency: dict[str, Any]
    window_counts: dict[str, int]
    metrics: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    unknown: dict[str, Any] | None = None  # the unknown decision's figures (None: the bundle has none)
    stream: dict[str, Any] | None = None  # stream metrics of the reported labels (recordings with labels)
    rotation: str | None = None

    @property
    def columns(self) -> list[str]:
        """The timeline's columns (docs/simulate.md)."""
        fixed = ["recording", "start_s", "end_s", "pred_raw", "pred_smoothed", "label"]
        return fixed + [f"p_{name}" for name in self.labels]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per window, in stream order; ``label`` is None where the window is not pure."""
        rows = []
        rate, window = self.spec.rate_hz, self.spec.window
        for tr in self.traces:
            for i, start in enumerate(tr.starts):
                row = {
                    "recording": tr.recording.source,
                    "start_s": round(start / rate, 4),
                    "end_s": round((start + window) / rate, 4),
                    "pred_raw": self.name(tr.raw[i]),
                    "pred_smoothed": self.name(tr.smoothed[i]),
                    "label": self.labels[tr.truth[i]] if tr.truth[i] != UNLABELLED else None,
                }
                row.update({f"p_{name}": round(float(p), 6) for name, p in zip(self.labels, tr.probs[i])})
                rows.append(row)
        return rows

    def name(self, label: int) -> str:
        """A reported label's name: a class, or ``unknown``."""
        return self.labels[label] if label < len(self.labels) else UNKNOWN

    def predictions(self) -> dict[str, dict[str, int]]:
        """Windows predicted per label (``unknown`` too), raw and smoothed: what a replay without labels reports."""
        out = {}
        for which in ("raw", "smoothed"):
            found = np.concatenate([getattr(tr, which) for tr in self.traces]) if self.traces else np.zeros(0, int)
            counts = np.bincount(found.astype(np.int64), minlength=len(self.labels) + 1)
            out[which] = {self.name(label): int(n) for label, n in enumerate(counts) if n}
        return out

    def summary(self) -> dict[str, Any]:
        """The machine-readable result without the per-window rows."""
        return {
            "bundle": str(self.bundle.root),
            "runtime": self.runtime,
            "smoothing": str(self.smoothing),
            "rotation": self.rotation,
            "unknown": self.unknown,
            "stream": self.stream,
            "recordings": [
                {"source": tr.recording.source, "samples": len(tr.recording), "windows": len(tr.starts)}
                for tr in self.traces
            ],
            "windows": self.window_counts,
            "predictions": self.predictions(),
            "metrics": self.metrics,
            "latency": self.latency,
            "warnings": self.warnings,
        }


def simulate(
    bundle: Bundle | str | Path,
    recordings: list[Recording],
    runtime: str = "tflm",
    smoothing: str | SmoothingSpec | None = None,
    log: Callable[[str], None] | None = None,
    rotation: str | None = None,
    unknown: bool = True,
    jobs: int = 1,
) -> SimulationResult:
    """Replay ``recordings`` through ``bundle``'s front end, quantization, ``runtime``, unknown decision and
    post-processing.

    ``runtime`` is tflm, c (harlite's C engine, compiled for this host), litert (the int8 model in LiteRT)
    or keras (the float model); ``smoothing`` the post-processing (``None``: the bundle's ``postprocess``,
    else none); ``rotation`` turns the raw sensor axes (``harlite.core.orientation.rotation_matrix``);
    ``unknown`` False ignores the bundle's unknown decision; ``log`` receives progress and warnings.
    ``bundle`` is a loaded ``Bundle`` or a bundle's path (loaded and verified here). With ``jobs`` > 1 the
    recordings are replayed in that many worker processes (``harlite.run.processes``; each recording on its
    own, so the result is the serial one exactly).
    """
    if runtime not in RUNTIMES:
        raise HarliteError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}.")
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    manifest = bundle.manifest
    spec = bundle.frontend()
    labels = bundle.labels
    smoothing = bundle_smoothing(manifest) if smoothing is None else parse_smoothing(smoothing)
    turn = rotation_matrix(rotation) if rotation else None
    say = log or (lambda message: None)
    decision = UnknownSpec.from_manifest(manifest["unknown"]) if unknown and "unknown" in manifest else None
    fitted, foreign, warnings = [], [], []
    relabel = manifest.get("dataset") or {}
    ignore = (*relabel.get("ignore", ()), OTHER_LABEL)  # "other" samples: quietly none of the bundle's classes
    for rec in recordings:
        foreign.append(foreign_samples(rec, labels, relabel.get("merge"), tuple(relabel.get("ignore", ()))))
        rec = fit_to_bundle(rec, spec, labels, relabel.get("merge"), ignore, relabel.get("gravity", "included"))
        if turn is not None:
            rec = replace(rec, samples=rotate_samples(rec.samples, rec.raw_channels, turn))
        for warning in rec.warnings:
            warnings.append(warning)
            say(f"warning: {warning}")
        if len(rec) < spec.window:
            warnings.append(
                f"{rec.source}: {len(rec)} samples ({rec.duration_s:.2f} s) is shorter than one window "
                f"({spec.window} samples): no windows."
            )
            say(f"warning: {warnings[-1]}")
        fitted.append(rec)
    started, cpu_started = time.perf_counter(), time.process_time()
    if jobs > 1 and len(fitted) > 1:
        played = in_processes(_replay, fitted, jobs, partial(_player, str(bundle.root), runtime, smoothing, unknown))
    else:
        player = _player(bundle, runtime, smoothing, unknown)
        played = []
        for n, rec in enumerate(fitted, 1):
            played.append(_replay(player, rec))
            say(f"[{n}/{len(fitted)}] {rec.source}: {len(played[-1].trace.starts)} windows")
    if jobs > 1 and len(fitted) > 1:
        for n, (rec, one) in enumerate(zip(fitted, played), 1):
            say(f"[{n}/{len(fitted)}] {rec.source}: {len(one.trace.starts)} windows")
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started + (sum(p.cpu_seconds for p in played) if jobs > 1 else 0.0)
    traces = [replace(one.trace, recording=rec, foreign=f) for one, rec, f in zip(played, fitted, foreign)]
    counts = window_counts(traces)
    return SimulationResult(
        bundle=bundle,
        runtime=runtime,
        smoothing=smoothing,
        labels=labels,
        spec=spec,
        traces=traces,
        latency=_latency(played, seconds, cpu_seconds, runtime != "keras"),
        window_counts=counts,
        metrics=replay_metrics(traces, labels) if counts[PURE] else None,
        warnings=warnings,
        unknown=unknown_figures(traces, len(labels), spec.window) if decision is not None else None,
        stream=stream_figures(traces, spec, len(labels)),
        rotation=rotation,
    )


def bundle_smoothing(manifest: dict[str, Any]) -> SmoothingSpec:
    """The post-processing a bundle was calibrated with (``postprocess``), or none."""
    return SmoothingSpec.from_manifest(manifest["postprocess"]) if "postprocess" in manifest else SmoothingSpec()


@dataclass
class _Played:
    """One recording's replay as a worker returns it: the trace (without the recording) and its timing."""

    trace: Trace
    invoke_ms: list[float]
    batch_seconds: float
    batch_windows: int
    cpu_seconds: float


def _player(bundle: Bundle | str, runtime: str, smoothing: SmoothingSpec, unknown: bool = True) -> _Player:
    """A player of ``bundle`` (a path is loaded and verified) in ``runtime``, with its unknown decision
    unless ``unknown`` is False."""
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    manifest = bundle.manifest
    decision = UnknownSpec.from_manifest(manifest["unknown"]) if unknown and "unknown" in manifest else None
    return _Player(bundle.frontend(), manifest, open_runtime(bundle, RUNTIMES[runtime]), smoothing, decision)


def _replay(player: _Player, rec: Recording) -> _Played:
    cpu, invokes, batch = time.process_time(), len(player.invoke_ms), (player.batch_seconds, player.batch_windows)
    trace = player.play(rec)
    return _Played(replace(trace, recording=None), player.invoke_ms[invokes:], player.batch_seconds - batch[0],
                   player.batch_windows - batch[1], time.process_time() - cpu)  # fmt: skip


def _latency(played: list[_Played], seconds: float, cpu_seconds: float, int8: bool) -> dict[str, Any]:
    """Per-invoke latency (ms) and end-to-end windows per second (front end, quantization, smoothing),
    by the wall clock and by CPU time (every worker's; other busy processes do not inflate it)."""
    ms = np.asarray([t for p in played for t in p.invoke_ms], np.float64)
    batch_seconds, batch_windows = sum(p.batch_seconds for p in played), sum(p.batch_windows for p in played)
    windows = len(ms) + batch_windows
    if len(ms):
        invoke = {"mean": float(ms.mean())} | {f"p{q}": float(np.percentile(ms, q)) for q in (50, 99)}
    elif batch_windows:  # one batch per recording: only the mean per window is known
        invoke = {"mean": 1e3 * batch_seconds / batch_windows, "p50": None, "p99": None}
    else:
        invoke = None
    return {
        "windows": windows,
        "seconds": seconds,
        "windows_per_s": windows / seconds if windows and seconds > 0 else 0.0,
        "cpu_seconds": cpu_seconds,
        "windows_per_cpu_s": windows / cpu_seconds if windows and cpu_seconds > 0 else 0.0,
        "batched": not int8,
        "invoke_ms": invoke,
    }


def fit_to_bundle(rec: Recording, spec: FrontEndSpec, labels: tuple[str, ...], merge: dict[str, str] | None = None,
                  ignore: tuple[str, ...] = (), gravity: str | None = None) -> Recording:  # fmt: skip
    """``rec`` at the bundle's rate, with the bundle's raw sensors and labels, renamed by the training
    dataset's ``merge`` (other names count as unlabelled)."""
    if rec.rate != spec.rate_hz:
        raise HarliteError(
            f"{rec.source}: {rec.rate:g} Hz but the bundle expects {spec.rate_hz:g} Hz: "
            "read it with harlite.data.recordings.read_csv(path, rate), which puts it on the model's grid."
        )
    rec = rec.with_raw_channels(spec.raw_channels)
    if gravity is not None and rec.gravity != gravity:
        raise HarliteError(f"{rec.source} holds acceleration {'without' if rec.gravity == 'removed' else 'with'} gravity, "
                           f"but the bundle's model was trained on acceleration {'with' if gravity == 'included' else 'without'} it.")  # fmt: skip
    if rec.labels is None or rec.classes == labels:
        return rec
    merge = merge or {}
    unknown = tuple(name for name in rec.classes if merge.get(name, name) not in labels)
    quiet = [name for name in unknown if name in ignore]
    shown = [name for name in unknown if name not in ignore]
    note = (f"{rec.source}: label {', '.join(map(repr, shown))} is not one of the bundle's ({', '.join(labels)}): "
            "those samples count as unlabelled",) if shown else ()  # fmt: skip
    return replace(rec.with_classes(labels, merge, tuple(quiet) + tuple(shown)), warnings=rec.warnings + note)


class _Player:
    """Drives one model over streams the way the firmware does."""

    def __init__(self, spec: FrontEndSpec, manifest: dict[str, Any], model: Any, smoothing: SmoothingSpec,
                 decision: UnknownSpec | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.model = model
        self.decision = decision
        self.int8 = hasattr(model, "invoke_int8")
        norm, quant = manifest["normalization"], manifest["quantization"]
        self.mean = np.asarray(norm["mean"], np.float32)
        self.std = np.asarray(norm["std"], np.float32)
        self.in_scale, self.in_zero = float(quant["input"]["scale"]), int(quant["input"]["zero_point"])
        self.out_scale = np.float32(quant["output"]["scale"])
        self.out_zero = np.float32(quant["output"]["zero_point"])
        self.n_classes = len(manifest["labels"])
        self.front_end = StreamingFrontEnd(spec)
        self.smoothing = smoothing
        self.invoke_ms: list[float] = []
        self.batch_seconds, self.batch_windows = 0.0, 0

    def play(self, rec: Recording) -> Trace:
        """Replay one recording from a reset front end and smoother.

        An int8 runtime classifies each window as it is emitted, as the board does; a float runtime
        (Keras) classifies the recording's windows in one batch, which gives the same probabilities
        since every window starts from a zero LSTM state.
        """
        self.front_end.reset()
        inputs, outputs, features, probs, floats = [], [], [], [], []
        hop = self.spec.hop
        for i in range(0, len(rec), hop):
            for window in self.front_end.push_block(rec.samples[i : i + hop]):
                if not self.int8:
                    floats.append(window)
                    continue
                q = quantize(window, self.mean, self.std, self.in_scale, self.in_zero)
                t0 = time.perf_counter()
                out, *extra = self.model.outputs_int8(q) if self.decision is not None else [self.model.invoke_int8(q)]
                self.invoke_ms.append((time.perf_counter() - t0) * 1e3)
                out = np.asarray(out, np.int8).reshape(-1)
                probs.append((out.astype(np.float32) - self.out_zero) * self.out_scale)
                inputs.append(q)
                outputs.append(out)
                features.append(np.concatenate(extra) if extra else np.zeros(0, np.int8))
        m, window, n_channels = len(probs) + len(floats), self.spec.window, len(self.spec.channels)
        unknown = np.zeros(m, bool)
        if floats:
            t0 = time.perf_counter()
            probs = list(self.model.predict(np.stack(floats)))
            if self.decision is not None:
                unknown = decide(*self.model.unknown_features(np.stack(floats)), self.decision)[0]
            self.batch_seconds += time.perf_counter() - t0
            self.batch_windows += len(floats)
        probs_arr = np.array(probs, np.float32).reshape(m, self.n_classes)
        feats = (np.array(features, np.int8).reshape(m, -1) if m else np.zeros((0, 0), np.int8)) if self.int8 else None
        if self.int8 and self.decision is not None and m:
            if feats.shape[1] == 0:
                raise HarliteError("the bundle's int8 model has no hidden-vector and logits outputs, but its "
                                   "manifest has an unknown decision: rebuild it with 'harlite convert'.")  # fmt: skip
            units = feats.shape[1] - self.n_classes
            q_in = np.array(inputs, np.int8).reshape(m, window, n_channels)
            unknown = decide(q_in, np.array(outputs), feats[:, :units], feats[:, units:], self.decision)[0]
        raw = np.where(unknown, self.n_classes, probs_arr.argmax(axis=1)) if m else np.zeros(0, np.int64)
        truth, kind = window_truth(rec, self.spec)
        return Trace(
            recording=rec,
            starts=window_starts(len(rec), self.spec),
            probs=probs_arr,
            raw=raw,
            smoothed=smooth(probs_arr, self.smoothing, raw),
            truth=truth,
            kind=kind,
            inputs=np.array(inputs, np.int8).reshape(m, window, n_channels) if self.int8 else None,
            outputs=np.array(outputs, np.int8).reshape(m, self.n_classes) if self.int8 else None,
            features=feats,
        )


def bundle_subjects(bundle: Bundle, part: str) -> tuple[str, list[str]]:
    """The dataset a bundle was trained on (``hapt`` or a folder) and the subjects of its ``part``
    (test, or train: training and validation)."""
    dataset = bundle.manifest.get("dataset") or {}
    groups = dataset.get("test", []) if part == "test" else [*dataset.get("train", []), *dataset.get("val", [])]
    if not groups or dataset.get("split", "subject") != "subject":
        raise HarliteError(f"{bundle.root} records no {part} subjects of its data (split by {dataset.get('split', '?')}): "
                           "give RECORDING files or --dataset with --subjects.")  # fmt: skip
    return dataset.get("data", "hapt"), list(groups)


def load_recordings(
    paths: list[str | Path] = (),
    dataset: str | None = None,
    subjects: list[str] | tuple[str, ...] | None = None,
    manifest: dict[str, Any] | None = None,
    units: Units = Units(),
    layout: Layout | None = None,
) -> list[Recording]:
    """Recordings from CSV files (``.csv``, ``.csv.gz``; in ``units``, through the column mapping
    ``layout``) and/or a dataset: ``hapt`` (its ``subjects``) or a dataset folder (every recording, or
    those of ``subjects``; any number of labels, or none), at the rate of the bundle ``manifest``.
    Acceleration is expected with gravity unless the bundle's model was trained without it."""
    rate = None if manifest is None else float(manifest["rate_hz"])
    gravity = ((manifest or {}).get("dataset") or {}).get("gravity", "included")
    suffixes = (".csv", ".csv.gz") + ((".txt", ".tsv") if layout is not None else ())
    layout = layout if layout is not None else Layout(gravity=gravity)
    recordings = []
    for path in map(Path, paths):
        if not path.name.lower().endswith(suffixes):
            raise HarliteError(
                f"{path}: unknown recording format: harlite replays CSV files (.csv, .csv.gz) with the header "
                "time_s,acc_x,acc_y,acc_z[,gyro_x,gyro_y,gyro_z][,label], or others through --mapping (docs/data.md)."
            )
        recordings.append(read_csv(path, rate, units, layout))
    if dataset == "hapt":
        recordings.extend(load_hapt(subjects, transitions=True))
    elif dataset is not None:
        found = load_dataset(dataset, min_labels=0).recordings
        chosen = [r for r in found if subjects is None or r.subject in subjects]
        recordings.extend(r.resampled(rate) if rate else r for r in chosen)
    if not recordings:
        raise HarliteError("nothing to replay: give RECORDING files or --dataset (hapt or a dataset folder).")
    return recordings

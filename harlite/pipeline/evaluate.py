"""Test-split accuracy, macro-F1, per-class precision/recall and confusion matrices of any artifact.

An artifact is a run folder (its model.keras and .tflite files), a bundle folder (every model in
it), or one .keras/.tflite file next to a manifest.json or normalization.json. Models run through
``harlite.run.runtimes`` on physical windows, as on the device: standardization for float models, the
front end's fused standardize+quantize for int8 models; ``.tflite`` files run in LiteRT, reset before
every window (the fused LSTM op keeps its state between invocations).
"""

from __future__ import annotations

import contextlib
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.keras import load_keras
from harlite.bundle.loader import load_bundle
from harlite.bundle.manifest import MANIFEST, MAX_ARTIFACT_BYTES, read_manifest
from harlite.bundle.run_folder import ModelInput, read_model_input
from harlite.core.metrics import classification_metrics, plot_confusion
from harlite.core.unknown import UnknownSpec, decide
from harlite.data.windows import DataSpec, Split, Windows, load_split
from harlite.errors import BundleError
from harlite.io.files import check_writable, write_json
from harlite.io.limits import read_bounded
from harlite.io.locks import folder_lock
from harlite.pipeline.convert import io_details, quantization_info
from harlite.run.processes import in_processes
from harlite.run.runtimes import open_runtime, runtime_for

MODEL_SUFFIXES = (".keras", ".tflite")
UNKNOWN_KINDS = ("keras", "litert-int8", "tflm", "c")  # the runtimes that give what the unknown decision reads
BATCH = 1024  # windows predicted at a time
# --runtime of evaluate -> the harlite.run.runtimes kind that runs int8 .tflite files
INT8_RUNTIMES = {"litert": "litert-int8", "tflm": "tflm", "c": "c"}
# a bundle's model artifacts -> the runtime kind that runs them (int8: INT8_RUNTIMES)
BUNDLE_KINDS = {"keras": "keras", "float32": "litert-float32", "float16": "litert-float16"}


def open_model(path: Path, base: dict[str, Any], runtime: str = "litert") -> Any:
    """A ``harlite.run.runtimes`` runtime for one loose .keras or .tflite file described by ``base`` (a
    validated bundle manifest or a run folder's protocol.json). The file is read once, with a size cap;
    a .keras loads only through ``harlite.bundle.keras.load_keras``."""
    if path.suffix == ".keras":
        return runtime_for(base, "keras", load_keras(path), str(path))
    return tflite_model(read_bounded(path, MAX_ARTIFACT_BYTES, compressed=False, error=BundleError), base, runtime,
                        str(path))  # fmt: skip


def tflite_model(data: bytes, base: dict[str, Any], runtime: str = "litert", name: str = "the .tflite model") -> Any:
    """A runtime for .tflite bytes described by ``base``: int8 models in ``runtime`` (litert, tflm or c, the
    C engine) with the quantization the model holds, float models in LiteRT."""
    try:
        integer = io_details(data)["input"]["dtype"] == "int8"
    except (ValueError, RuntimeError, IndexError) as e:
        raise BundleError(f"{name} is not a valid .tflite model ({(str(e).splitlines() or [''])[0][:200]}).") from None
    if not integer:
        return runtime_for(base, "litert-float32", data, name)
    mean, std = (np.asarray(base["normalization"][k], np.float32) for k in ("mean", "std"))
    return runtime_for({**base, "quantization": quantization_info(data, mean, std)}, INT8_RUNTIMES[runtime], data, name)


def predicted_classes(model: Any, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) classes of a runtime on labelled physical windows, read a shard at a time."""
    parts = [(y, model.predict(X).argmax(axis=-1)) for X, y in windows.batches(BATCH)]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([y for y, _ in parts]), np.concatenate([p for _, p in parts])


def score(model: Any, windows: Windows) -> dict[str, Any]:
    """classification_metrics of a runtime's predictions on labelled physical windows; for a bundle with an
    unknown decision and a runtime that can apply it, also ``unknown``: the share of the windows called
    unknown and the accuracy on the others."""
    y, predicted = predicted_classes(model, windows)
    metrics = classification_metrics(y, predicted, model.manifest["labels"])
    if "unknown" in model.manifest and model.kind in UNKNOWN_KINDS and len(y):
        spec = UnknownSpec.from_manifest(model.manifest["unknown"])
        unknown = np.concatenate([decide(*model.unknown_features(X), spec)[0] for X, _ in windows.batches(BATCH)])
        accepted = ~unknown
        metrics["unknown"] = {"rate": float(unknown.mean()),
                              "accepted_accuracy": float((predicted[accepted] == y[accepted]).mean())
                              if accepted.any() else None}  # fmt: skip
    return metrics


def artifact_models(artifact: str | Path, runtime: str = "litert") -> tuple[dict[str, Any], ModelInput]:
    """The runtimes of every model of a run folder, bundle, .keras or .tflite path (by name), and what the
    models' input is. A bundle's models (and a file that is one of them) come verified from the bundle."""
    path = Path(artifact)
    if not path.exists():
        raise BundleError(f"{path} does not exist: pass a run folder, a bundle, a model.keras or a .tflite file.")
    folder = path if path.is_dir() else path.parent
    if not path.is_dir() and path.suffix not in MODEL_SUFFIXES:
        raise BundleError(f"{path} is neither a .keras nor a .tflite model.")
    if (folder / MANIFEST).exists() and path.is_dir():
        bundle = load_bundle(folder)
        models = {
            k: open_runtime(bundle, _bundle_kind(k, runtime)) for k in bundle.kinds if k in (*BUNDLE_KINDS, "int8")
        }
        return models, ModelInput.from_dict(bundle.manifest)
    if (folder / MANIFEST).exists():
        manifest = read_manifest(folder / MANIFEST)  # validated; the loose file need not be one of its artifacts
        kind = next((k for k, a in manifest["artifacts"].items() if k in (*BUNDLE_KINDS, "int8")
                     and (folder / a["file"]).resolve() == path.resolve()), None)  # fmt: skip
        if kind is None:
            model = open_model(path, manifest, runtime)
        else:  # one of the bundle's own models: verified as the bundle records it
            model = open_runtime(load_bundle(folder, verify=False), _bundle_kind(kind, runtime))
        return {path.stem: model}, ModelInput.from_dict(manifest)
    model_input = read_model_input(folder)
    base = model_input.to_dict()
    files = [path] if not path.is_dir() else [p for p in sorted(folder.iterdir()) if p.suffix in MODEL_SUFFIXES]
    if not files:
        raise BundleError(f"{folder} holds no .keras or .tflite model.")
    return {p.stem: open_model(p, base, runtime) for p in files}, model_input


def _bundle_kind(kind: str, runtime: str) -> str:
    return INT8_RUNTIMES[runtime] if kind == "int8" else BUNDLE_KINDS[kind]


def evaluate(
    artifact: str | Path,
    out: str | Path | None = None,
    force: bool = False,
    split: Split | None = None,
    data: str | None = None,
    runtime: str = "litert",
    jobs: int = 1,
) -> dict[str, Any]:
    """Metrics on the test split for every model of ``artifact``; with ``out``, JSON and confusion PNGs.

    ``split`` defaults to the artifact's own data (its manifest's or protocol.json's ``dataset``), or
    the dataset folder ``data`` split as the artifact was; int8 models run in ``runtime`` (litert,
    tflm or c). With ``jobs`` > 1 the windows are predicted in that many worker processes, each opening
    the artifact's models itself and reading its own shards (the same predictions as one process).
    """
    if runtime not in INT8_RUNTIMES:
        raise BundleError(f"unknown runtime {runtime!r}: choose one of {', '.join(INT8_RUNTIMES)}.")
    with folder_lock(out) if out is not None else contextlib.nullcontext():
        if out is not None:
            check_writable(Path(out) / "evaluation.json", force)
        models, model_input = artifact_models(artifact, runtime)
        if split is None:
            spec = (
                model_input.data
                if data is None
                else DataSpec.from_dict({**model_input.data.to_dict(), "data": str(data)})
            )
            split = load_split(spec, model_input.protocol)
        labels = model_input.protocol.labels
        predictions = _predictions(models, artifact, runtime, split.test, jobs)
        results = {}
        for name in models:
            results[name] = m = classification_metrics(*predictions[name], labels)
            if out is not None:
                plot_confusion(m["confusion"], labels, Path(out) / f"confusion_{name}.png", title=name)
        report = {"artifact": str(artifact), "runtime": runtime, "split": split.kind,
                  "test": split.groups.get("test", []), "results": results}  # fmt: skip
        if out is not None:
            write_json(Path(out) / "evaluation.json", report)
    return report


def _predictions(models: dict[str, Any], artifact: str | Path, runtime: str, windows: Windows,
                 jobs: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """(true, predicted) classes of every model on ``windows``, in this process or over ``jobs`` processes."""
    if jobs <= 1:
        return {name: predicted_classes(model, windows) for name, model in models.items()}
    pieces = windows.pieces(4 * jobs)
    items = [(name, piece) for name in models for piece in pieces]
    parts = in_processes(_predict_piece, items, jobs, partial(_open_models, str(artifact), runtime))
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in models}
    for (name, _), part in zip(items, parts):
        found[name].append(part)
    return {name: (np.concatenate([y for y, _ in p]), np.concatenate([q for _, q in p])) for name, p in found.items()}


def _open_models(artifact: str, runtime: str) -> dict[str, Any]:
    return artifact_models(artifact, runtime)[0]


def _predict_piece(models: dict[str, Any], item: tuple[str, Windows]) -> tuple[np.ndarray, np.ndarray]:
    name, windows = item
    return predicted_classes(models[name], windows)

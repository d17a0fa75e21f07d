"""Test-split accuracy, macro-F1, per-class precision/recall and confusion matrices of any artifact.

An artifact is a run folder (its model.keras and .tflite files), a bundle folder (every model in
it), or one .keras/.tflite file next to a manifest.json or normalization.json. Models run through
``harlite.runtimes`` on physical windows, as on the device: standardization for float models, the
front end's fused standardize+quantize for int8 models; ``.tflite`` files run in LiteRT, reset before
every window (the fused LSTM op keeps its state between invocations).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harlite.errors import BundleError
from harlite.manifest import MANIFEST, check_writable, load_manifest, write_json
from harlite.metrics import classification_metrics, plot_confusion
from harlite.runs import read_model_input
from harlite.windows import DataSpec, Split, WindowSet, load_split

MODEL_SUFFIXES = (".keras", ".tflite")


def base_manifest(folder: str | Path) -> dict[str, Any]:
    """The bundle's manifest, or for a run folder the part of one that its protocol.json gives."""
    folder = Path(folder)
    if (folder / MANIFEST).exists():
        return load_manifest(folder)
    return {**read_model_input(folder).to_dict(), "_root": str(folder)}


# --runtime of evaluate -> the harlite.runtimes kind that runs int8 .tflite files
INT8_RUNTIMES = {"litert": "litert-int8", "tflm": "tflm", "c": "c"}


def open_model(path: Path, base: dict[str, Any], runtime: str = "litert") -> Any:
    """A ``harlite.runtimes`` runtime for one .keras or .tflite file described by ``base``; int8 models run
    in ``runtime`` (litert, tflm or c, the C engine), float models in LiteRT."""
    from harlite.convert import io_details, quantization_info
    from harlite.runtimes import open_runtime

    manifest = {**base, "_root": str(path.parent)}
    if path.suffix == ".keras":
        try:
            return open_runtime({**manifest, "artifacts": {"keras": {"file": path.name}}}, "keras")
        except (OSError, ValueError) as e:
            raise BundleError(f"{path} is not a Keras model ({e}).") from None
    try:
        data = path.read_bytes()
        integer = io_details(data)["input"]["dtype"] == "int8"
    except (ValueError, RuntimeError) as e:
        raise BundleError(f"{path} is not a valid .tflite model ({e}).") from None
    if not integer:
        return open_runtime({**manifest, "artifacts": {"float32": {"file": path.name}}}, "litert-float32")
    if base.get("artifacts", {}).get("int8", {}).get("file") != path.name or "quantization" not in base:
        mean, std = (np.asarray(base["normalization"][k], np.float32) for k in ("mean", "std"))
        manifest["quantization"] = quantization_info(data, mean, std)
    return open_runtime({**manifest, "artifacts": {"int8": {"file": path.name}}}, INT8_RUNTIMES[runtime])


def tflite_model(data: bytes, base: dict[str, Any]) -> Any:
    """A LiteRT runtime for .tflite bytes (written to a temporary file that the runtime reads once)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        return open_model(path, base)


def score(model: Any, windows: WindowSet) -> dict[str, Any]:
    """classification_metrics of a runtime's predictions on labelled physical windows."""
    return classification_metrics(windows.y, model.predict(windows.X).argmax(axis=-1), model.manifest["labels"])


def artifact_models(artifact: str | Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """Model files by name and the base manifest for a run folder, bundle, .keras or .tflite path."""
    path = Path(artifact)
    if not path.exists():
        raise BundleError(f"{path} does not exist: pass a run folder, a bundle, a model.keras or a .tflite file.")
    folder = path if path.is_dir() else path.parent
    base = base_manifest(folder)
    if not path.is_dir():
        if path.suffix not in MODEL_SUFFIXES:
            raise BundleError(f"{path} is neither a .keras nor a .tflite model.")
        return {path.stem: path}, base
    if "artifacts" in base:
        files = {k: folder / a["file"] for k, a in base["artifacts"].items() if a["file"].endswith(MODEL_SUFFIXES)}
    else:
        files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in MODEL_SUFFIXES}
    if not files:
        raise BundleError(f"{folder} holds no .keras or .tflite model.")
    return files, base


def evaluate(
    artifact: str | Path,
    out: str | Path | None = None,
    force: bool = False,
    split: Split | None = None,
    data: str | None = None,
    runtime: str = "litert",
) -> dict[str, Any]:
    """Metrics on the test split for every model of ``artifact``; with ``out``, JSON and confusion PNGs.

    ``split`` defaults to the artifact's own data (its manifest's or protocol.json's ``dataset``), or
    the dataset folder ``data`` split as the artifact was; int8 models run in ``runtime`` (litert,
    tflm or c).
    """
    if runtime not in INT8_RUNTIMES:
        raise BundleError(f"unknown runtime {runtime!r}: choose one of {', '.join(INT8_RUNTIMES)}.")
    files, base = artifact_models(artifact)
    models = {name: open_model(path, base, runtime) for name, path in files.items()}
    if out is not None:
        out = Path(out)
        check_writable(out / "evaluation.json", force)
    if split is None:
        model_input = read_model_input(base["_root"])
        spec = model_input.data if data is None else DataSpec.from_dict({**model_input.data.to_dict(), "data": str(data)})
        split = load_split(spec, model_input.protocol)
    labels = tuple(base["labels"])
    results = {}
    for name, model in models.items():
        results[name] = m = score(model, split.test)
        print(f"harlite evaluate: {name}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} (n={m['n']})",
              file=sys.stderr)  # fmt: skip
        if out is not None:
            plot_confusion(m["confusion"], labels, out / f"confusion_{name}.png", title=name)
    report = {"artifact": str(artifact), "runtime": runtime, "split": split.kind, "test": split.groups.get("test", []), "results": results}
    if out is not None:
        write_json(out / "evaluation.json", report)
    return report

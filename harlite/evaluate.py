"""Test-subject accuracy, macro-F1, per-class precision/recall and confusion matrices of any artifact.

An artifact is a Keras run folder or model.keras, a bundle folder (every model in it), or a .tflite
file next to a manifest.json or normalization.json. Models take physical windows through the same
path as the device: standardization for float models, the fused standardize+quantize of the front
end for int8 models. ``.tflite`` files run in the real LiteRT interpreter, reset before every window
(the fused LSTM op keeps its state between invocations).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from harlite.frontend import FrontEndSpec, quantize, standardize
from harlite.manifest import MANIFEST, check_writable, load_manifest, write_json
from harlite.metrics import classification_metrics, plot_confusion
from harlite.protocol import LABELS, TEST_SUBJECTS
from harlite.windows import WindowSet

MODEL_SUFFIXES = (".keras", ".tflite")
Predictor = Callable[[np.ndarray], np.ndarray]  # physical windows (n, window, C) -> probabilities (n, classes)


def litert_predictor(
    data: bytes, mean: np.ndarray, std: np.ndarray, window: int, name: str = ".tflite"
) -> Predictor:
    """Probabilities of a .tflite model in LiteRT for physical windows, one window per invoke, reset each time."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=data)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise click.ClickException(f"{name} is not a valid .tflite model ({e}).") from None
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    shape = [int(v) for v in inp["shape"]]
    if shape != [1, window, len(mean)]:
        raise click.ClickException(
            f"{name} takes input of shape {shape}, but the front end gives [1, {window}, {len(mean)}]: "
            "pass a .tflite made by 'harlite convert' for this bundle."
        )
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    integer = np.dtype(inp["dtype"]) == np.int8

    def predict(X: np.ndarray) -> np.ndarray:
        x = quantize(X, mean, std, in_scale, in_zero) if integer else standardize(X, mean, std)
        probs = np.empty((len(X), out["shape"][-1]), dtype=np.float32)
        for i, window in enumerate(x):
            interpreter.reset_all_variables()
            interpreter.set_tensor(inp["index"], window[None])
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"])[0]
            probs[i] = (y.astype(np.float32) - out_zero) * out_scale if out_scale else y
        return probs

    return predict


def keras_predictor(model: Any, mean: np.ndarray, std: np.ndarray) -> Predictor:
    """Probabilities of a Keras model for physical windows."""
    return lambda X: model.predict(standardize(X, mean, std), batch_size=256, verbose=0)


def score(predict: Predictor, windows: WindowSet) -> dict[str, Any]:
    """classification_metrics of a predictor on labelled windows."""
    return classification_metrics(windows.y, predict(windows.X).argmax(axis=-1))


def resolve_artifact(artifact: str | Path) -> tuple[dict[str, Predictor], np.ndarray, np.ndarray, FrontEndSpec]:
    """Predictors by name, normalization and front end for a run folder, bundle, .keras or .tflite path."""
    from harlite.train import load_model, load_normalization

    path = Path(artifact)
    if not path.exists():
        raise click.ClickException(
            f"{path} does not exist: pass a run folder, a bundle, a model.keras or a .tflite file."
        )
    folder = path if path.is_dir() else path.parent
    mean, std, spec = load_normalization(folder)
    if not path.is_dir():
        if path.suffix not in MODEL_SUFFIXES:
            raise click.ClickException(f"{path} is neither a .keras nor a .tflite model.")
        files = {path.stem: path}
    elif (folder / MANIFEST).exists():
        artifacts = load_manifest(folder, require=("artifacts",))["artifacts"]
        files = {kind: folder / a["file"] for kind, a in artifacts.items() if a["file"].endswith(MODEL_SUFFIXES)}
    else:
        files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in MODEL_SUFFIXES}
    if not files:
        raise click.ClickException(f"{folder} holds no .keras or .tflite model.")
    predictors = {}
    for name, file in files.items():
        if file.suffix == ".keras":
            predictors[name] = keras_predictor(load_model(file), mean, std)
        else:
            predictors[name] = litert_predictor(file.read_bytes(), mean, std, spec.window, name=str(file))
    return predictors, mean, std, spec


def evaluate(
    artifact: str | Path, out: str | Path | None = None, force: bool = False, windows: WindowSet | None = None
) -> dict[str, Any]:
    """Metrics on the test subjects for every model of ``artifact``; with ``out``, JSON and confusion PNGs.

    ``windows`` defaults to the HAPT windows of the artifact's front end; only test subjects are used.
    """
    from harlite.windows import load_windows

    predictors, _, _, spec = resolve_artifact(artifact)
    if out is not None:
        out = Path(out)
        check_writable(out / "evaluation.json", force)
    windows = load_windows(spec=spec) if windows is None else windows
    test = windows.of_subjects(TEST_SUBJECTS)
    if not len(test):
        raise click.ClickException("the data holds no windows of the test subjects.")
    results = {}
    for name, predict in predictors.items():
        results[name] = score(predict, test)
        print(f"harlite evaluate: {name}: accuracy {results[name]['accuracy']:.4f}, "
              f"macro-F1 {results[name]['macro_f1']:.4f} (n={results[name]['n']})", file=sys.stderr)  # fmt: skip
        if out is not None:
            plot_confusion(results[name]["confusion"], LABELS, out / f"confusion_{name}.png", title=name)
    report = {"artifact": str(artifact), "subjects": list(TEST_SUBJECTS), "results": results}
    if out is not None:
        write_json(out / "evaluation.json", report)
    return report

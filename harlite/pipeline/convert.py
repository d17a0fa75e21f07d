"""Keras model -> .tflite files (int8 for microcontrollers, float32/float16 for phones) and manifest.json.

The int8 model is full-integer (int8 input and output) and is converted from the batch-1 export copy
(``harlite.pipeline.models.export_copy``), which makes the converter emit the fused
``UNIDIRECTIONAL_SEQUENCE_LSTM`` op; activations are calibrated on windows of training subjects
only. Conversion is deterministic: the same model and data give the same bytes.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.loader import load_bundle
from harlite.bundle.manifest import FORMAT_VERSION, MANIFEST, artifact_entry
from harlite.bundle.run_folder import ModelInput, load_model, read_model_input, save_model, versions
from harlite.codegen.targets import DEFAULT_TARGET, get_target
from harlite.core.frontend import quantize_params, standardize
from harlite.data.windows import Split, Windows, load_split
from harlite.errors import BundleError
from harlite.io.files import atomic_write_bytes, check_writable, read_json, write_json
from harlite.io.locks import folder_lock
from harlite.pipeline.c_sources import write_sources
from harlite.pipeline.models import count_macs, count_params, export_copy, with_features
from harlite.pipeline.unknown import DEFAULT_RATE, unknown_for_model
from harlite.tf import convert as tf_convert
from harlite.tf import tensorflow

FUSED_LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
CALIBRATION_WINDOWS = 500
TFLITE_FILES = {"int8": "model_int8.tflite", "float32": "model_float32.tflite", "float16": "model_float16.tflite"}


def calibration_windows(
    pool: Windows, mean: np.ndarray, std: np.ndarray, n: int = CALIBRATION_WINDOWS, seed: int = 0
) -> np.ndarray:
    """``n`` standardized windows drawn (seeded, without replacement) from ``pool``, the split's non-test
    windows (training and validation subjects)."""
    if n < 1:
        raise BundleError(f"--calibration must be at least 1, got {n}.")
    pick = np.sort(np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False))
    return standardize(pool.rows(pick), mean, std)


def spread_input_ranges(model: Any, std: np.ndarray, calibration: np.ndarray) -> tuple[Any, np.ndarray]:
    """Give every input channel the int8 input resolution of the widest one, without changing the model.

    The int8 input tensor has one scale for all channels, set by the channel with the widest range on
    the calibration windows (about 11 standard deviations, a gyroscope); the gravity-bearing
    total_acc channels span only 3 to 5 of them, so the board saw the phone's tilt in steps of about
    2 degrees, which is what tells sitting from standing. That input rounding alone cost the default
    model 0.6 points of test accuracy, all of the int8 loss (docs/models.md). Channel c is multiplied
    by a gain g_c >= 1 (its std becomes std / g_c, which the manifest's fused quantization carries to
    the board for free) and the first layer's kernel rows for channel c are divided by g_c, so the
    float model computes the same function. ``model`` (standardized by ``std``, calibration windows
    ``calibration``) is changed in place; returns it and its new ``std``. A model already spread
    (gains within 0.1% of 1) is left as it is, so the step is idempotent; standardize the
    calibration windows again with the new ``std`` (not by multiplying), so that converting the
    bundle's own model gives the same bytes.
    """
    peak = np.maximum(np.abs(calibration).max(axis=(0, 1)), 1e-6)
    gain = (peak.max() / peak).astype(np.float32)
    if np.allclose(gain, 1.0, rtol=0, atol=1e-3):
        return model, std
    first = next(layer for layer in model.layers if layer.weights)
    if first.input is not model.input:
        raise ValueError(f"{model.name}: the first weighted layer {first.name} does not read the model input")
    weights = first.get_weights()
    weights[0] = weights[0] / gain[:, None]  # the kernel's input-channel axis is its second to last
    first.set_weights(weights)
    return model, (std / gain).astype(np.float32)


def int8_ready(
    model: Any, pool: Windows, mean: np.ndarray, std: np.ndarray, n: int = CALIBRATION_WINDOWS
) -> tuple[Any, np.ndarray, np.ndarray]:
    """``model`` with its input ranges spread (``spread_input_ranges``), its new std and the ``n``
    calibration windows of ``pool`` standardized with that std: what ``to_int8`` needs."""
    model, std = spread_input_ranges(model, std, calibration_windows(pool, mean, std, n))
    return model, std, calibration_windows(pool, mean, std, n)


def _converter(model: Any) -> Any:
    tf = tensorflow()
    deployable = model if model.input_shape[0] == 1 and not _has_batch_norm(model) else export_copy(model)
    return tf, tf.lite.TFLiteConverter.from_keras_model(deployable)


def to_int8(model: Any, calibration: np.ndarray, per_channel_dense: bool = False, features: bool = True) -> bytes:
    """Full-integer int8 .tflite (int8 input and output) of ``model``, calibrated on standardized windows.

    With ``features`` the model has three int8 outputs, in this order: the class probabilities, the hidden
    vector and the logits (``harlite.pipeline.models.with_features``; the probabilities are the very bytes
    a one-output conversion gives), which the unknown decision reads. Dense (FULLY_CONNECTED) weights get
    one scale per tensor unless ``per_channel_dense``: the TFLM of the Arduino library reads only the
    first of per-channel scales (``harlite.codegen.targets``).
    """
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(with_features(model)) if features else _converter(model)[1]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_dense
    converter.representative_dataset = lambda: ([window[None].astype(np.float32)] for window in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": they come from calibration
        warnings.simplefilter("ignore", UserWarning)
        data = slim_int8(tf_convert(converter), features)
    if FUSED_LSTM not in tflite_ops(data):
        raise RuntimeError(f"the int8 model lacks {FUSED_LSTM}: convert from the batch-1 export copy")
    return data


def slim_int8(data: bytes, features: bool = False) -> bytes:
    """The int8 .tflite without what no interpreter reads, so that it is small and deterministic; with
    ``features``, its outputs put in the order probabilities, hidden vector, logits (``feature_outputs``).

    Tensor names and the other nonessential strings go (``flatbuffer_utils.strip_strings``: about
    2 KB of a 30 KB model in the microcontroller's flash, no output changes, tested in LiteRT and
    TFLM; the float models for phones keep their names). So does the content of buffers no tensor
    uses: the converter leaves the fused LSTM's initial state behind in such buffers, sometimes
    empty, sometimes holding uninitialised memory, which made two conversions of the same model
    differ in content and even in size.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    flatbuffer_utils.strip_strings(model)
    used = {m.buffer for m in model.metadata or []} | {t.buffer for g in model.subgraphs for t in g.tensors}
    for index, buffer in enumerate(model.buffers):
        if index not in used:
            buffer.data = None
    if features:
        model.subgraphs[0].outputs = np.asarray(feature_outputs(model), np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def feature_outputs(model: Any) -> list[int]:
    """[probabilities, hidden, logits] tensor indexes of a converted three-output model (a flatbuffer
    object): the SOFTMAX's output, the input of the FULLY_CONNECTED that gives the SOFTMAX its logits, and
    those logits. The converter orders a model's outputs its own way; harlite's order is fixed."""
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    from tensorflow.lite.python import schema_py_generated as schema

    ops = {code: [op for op in graph.operators if codes[op.opcodeIndex] == code]
           for code in (schema.BuiltinOperator.SOFTMAX, schema.BuiltinOperator.FULLY_CONNECTED)}  # fmt: skip
    softmax = [op for op in ops[schema.BuiltinOperator.SOFTMAX] if op.outputs[0] in graph.outputs]
    if len(softmax) != 1:
        raise BundleError("the int8 model has no single SOFTMAX output: it cannot expose its hidden vector.")
    logits = int(softmax[0].inputs[0])
    dense = [op for op in ops[schema.BuiltinOperator.FULLY_CONNECTED] if op.outputs[0] == logits]
    outputs = [int(softmax[0].outputs[0]), int(dense[0].inputs[0]) if dense else -1, logits]
    if not dense or sorted(outputs) != sorted(int(i) for i in graph.outputs):
        raise BundleError("the int8 model's outputs are not its probabilities, hidden vector and logits.")
    return outputs


def to_float(model: Any, float16: bool = False) -> bytes:
    """Float .tflite (float32 input and output); ``float16`` stores the weights as float16."""
    tf, converter = _converter(model)
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return tf_convert(converter)


def _interpreter(data: bytes) -> Any:
    """LiteRT's interpreter on ``data``, its tensors not allocated (no delegate applied: the ops as stored)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=data)


def tflite_ops(data: bytes) -> list[str]:
    """Sorted builtin op names used by a .tflite model."""
    return sorted({op["op_name"] for op in _interpreter(data)._get_ops_details()})


def io_details(data: bytes) -> dict[str, Any]:
    """Input/output shape, dtype and (scale, zero point) of a single-input, single-output .tflite."""
    interpreter = _interpreter(data)
    out = {}
    for side, details in (("input", interpreter.get_input_details()), ("output", interpreter.get_output_details())):
        d = details[0]
        scale, zero_point = d["quantization"]
        out[side] = {
            "shape": [int(v) for v in d["shape"]],
            "dtype": np.dtype(d["dtype"]).name,
            "scale": float(scale),
            "zero_point": int(zero_point),
        }
    return out


def quantization_info(int8: bytes, mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    """The manifest's ``quantization``: int8 input (with the fused per-channel mul/add) and output."""
    io = io_details(int8)
    scale, zero_point = io["input"]["scale"], io["input"]["zero_point"]
    mul, add = quantize_params(mean, std, scale, zero_point)
    return {
        "input": {"scale": scale, "zero_point": zero_point, "input_mul": mul.tolist(), "input_add": add.tolist()},
        "output": {"scale": io["output"]["scale"], "zero_point": io["output"]["zero_point"]},
    }


def resolve_model(path: str | Path) -> Path:
    """The .keras file a MODEL argument means: a file, or a run folder (its QAT model when there is one)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "qat" / "model.keras", path / "model.keras"):
            if candidate.exists():
                if candidate.parent.name == "qat":
                    print(f"harlite: using the int8-ready model {candidate} (made by 'harlite qat')", file=sys.stderr)
                return candidate
        raise BundleError(f"{path} holds no model.keras: train one with 'harlite train --out {path}'.")
    if not path.exists():
        raise BundleError(f"{path} does not exist: pass a model.keras or a run folder of 'harlite train'.")
    if path.suffix != ".keras":
        raise BundleError(f"{path} is not a .keras model: pass a model.keras or a run folder.")
    return path


def convert(
    model_path: str | Path,
    out: str | Path,
    calibration: int = CALIBRATION_WINDOWS,
    force: bool = False,
    split: Split | None = None,
    firmware: str | Path | None = None,
    target: str = DEFAULT_TARGET,
    unknown_rate: float = DEFAULT_RATE,
) -> dict[str, Any]:
    """Write the bundle ``out`` for a Keras model: model.keras, three .tflite files, the TFLM C sources
    (``harlite.codegen``, also copied into ``firmware`` when given) and manifest.json, with the unknown
    decision (``harlite.pipeline.unknown``) calibrated to call ``unknown_rate`` of the validation windows
    unknown (0: no unknown decision).

    ``model_path`` is a model.keras (with protocol.json or manifest.json and, when known, metrics.json
    beside it) or a run folder. ``split`` defaults to the model's own data; calibration uses
    ``calibration`` of its non-test windows. ``target`` is the TFLM the firmware builds against
    (``harlite.codegen.targets``): the int8 model is written so that it runs there as parity certifies, or
    refused. Returns the manifest.
    """
    source = resolve_model(model_path)
    out = Path(out)
    spec = get_target(target)
    with folder_lock(out):
        for path in [out / MANIFEST, out / "model.keras", *(out / name for name in TFLITE_FILES.values())]:
            check_writable(path, force)
        model_input = read_model_input(source.parent)
        model, metrics = _source_model(source)
        split = load_split(model_input.data, model_input.protocol) if split is None else split
        model, std, reference = int8_ready(model, split.pool, model_input.mean, model_input.std, calibration)
        model_input = ModelInput(model_input.protocol, model_input.mean, std, model_input.data, model_input.dataset)
        print(f"harlite convert: {model.name} from {source}, calibrating on {len(reference)} training windows",
              file=sys.stderr)  # fmt: skip
        files = {
            "int8": to_int8(model, reference, per_channel_dense=spec.per_channel_dense),
            "float32": to_float(model),
            "float16": to_float(model, float16=True),
        }
        save_model(model, out / "model.keras")
        for kind, data in files.items():
            atomic_write_bytes(out / TFLITE_FILES[kind], data)
        manifest = build_manifest(out, model, files["int8"], model_input, metrics)
        if unknown_rate:
            manifest["unknown"] = unknown_for_model(manifest, files["int8"], split, unknown_rate)
            print(f"harlite convert: unknown decision calibrated: {manifest['unknown']['rejected']:.2%} of "
                  f"{manifest['unknown']['windows']} {manifest['unknown']['calibrated_on']} windows called unknown",
                  file=sys.stderr)  # fmt: skip
        manifest["build"].update({"source": str(source), "calibration_windows": len(reference)})
        manifest["tflm"] = {"target": spec.name}
        manifest["build"]["versions"] = versions()
        write_json(out / MANIFEST, manifest)
        # The TFLM sources, arena and op list (running the model in TFLM first) and the C engine.
        manifest = write_sources(out, firmware_dir=firmware, force=force)
    print(f"harlite convert: int8 {len(files['int8'])} bytes, float32 {len(files['float32'])}, "
          f"float16 {len(files['float16'])} -> {out}", file=sys.stderr)  # fmt: skip
    return manifest


def _source_model(source: Path) -> tuple[Any, dict[str, Any]]:
    """The Keras model at ``source``, loaded safely, and the metrics known for it: a bundle's own model
    comes verified from the bundle (``harlite.bundle``) with the bundle's metrics; a run folder's with
    the test scores of its metrics.json."""
    if (source.parent / MANIFEST).is_file():
        bundle = load_bundle(source.parent)
        if bundle.has("keras") and (bundle.root / bundle.entry("keras")["file"]).resolve() == source.resolve():
            return bundle.keras_model(), dict(bundle.manifest.get("metrics", {}))
    return load_model(source), _known_metrics(source.parent)


def build_manifest(
    root: Path, model: Any, int8: bytes, model_input: ModelInput, metrics: dict[str, Any]
) -> dict[str, Any]:
    """manifest.json of docs/bundle.md for the files already written in ``root``."""
    artifacts = {"keras": artifact_entry(root / "model.keras", root)}
    artifacts.update({kind: artifact_entry(root / name, root) for kind, name in TFLITE_FILES.items()})
    described = model_input.to_dict()
    dataset = described.pop("dataset")
    return {
        "format": "harlite-bundle",
        "format_version": FORMAT_VERSION,
        "name": model.name,
        **described,
        "quantization": quantization_info(int8, model_input.mean, model_input.std),
        "artifacts": artifacts,
        "ops": tflite_ops(int8),
        "model": {
            "architecture": model.name,
            "params": count_params(model),
            "macs_per_window": count_macs(export_copy(model)),
        },
        "metrics": metrics,
        "dataset": dataset,
        "build": {"command": " ".join(["harlite", *sys.argv[1:]]) if sys.argv else ""},
    }


def _known_metrics(folder: Path) -> dict[str, Any]:
    """Test-split accuracy and macro-F1 of each variant from a metrics.json beside the model, if any."""
    path = folder / "metrics.json"
    if not path.exists():
        return {}

    metrics = read_json(path)
    test = metrics.get("test") if isinstance(metrics, dict) else None
    return {
        kind: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"], "split": "test"}
        for kind, m in (test.items() if isinstance(test, dict) else ())
        if isinstance(m, dict) and all(k in m for k in ("accuracy", "macro_f1", "n"))
    }


def _has_batch_norm(model: Any) -> bool:
    return any(type(layer).__name__ == "BatchNormalization" for layer in model.layers)

"""A tiny real bundle for tests: a small Conv1D+LSTM trained briefly on synthetic windows, converted
to int8/float32/float16 .tflite with calibration, and a manifest as harlite convert writes it.

``tiny_bundle`` (session fixture) is built once per session (also when several test modules import
it) and must be treated as read-only; copy it (``copy_bundle``) before changing anything.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from harlite.frontend import FrontEndSpec, quantize_params
from harlite.manifest import artifact_entry, write_json
from harlite.protocol import LABELS, RAW_CHANNELS, RAW_UNITS

CHANNELS = 9


def synthetic_windows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 128, 9) physical-unit windows whose class sets a per-channel offset and a tone, and labels."""
    offsets = np.random.default_rng(1234).normal(0, 1, (len(LABELS), CHANNELS))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(LABELS), n)
    t = np.arange(128) / 50.0
    tone = np.sin(2 * np.pi * (0.5 + y[:, None]) * t[None, :])[:, :, None]
    X = 0.3 * rng.normal(size=(n, 128, CHANNELS)) + 0.2 * offsets[y][:, None, :] + 0.2 * tone + 0.5
    return X.astype(np.float32), y


@lru_cache(maxsize=None)
def build_tiny_bundle(root: str, epochs: int = 4) -> Path:
    """Write a tiny bundle into ``root`` and return its path."""
    from harlite.models import build_model, export_copy
    from harlite.tf import keras, tensorflow

    tf, k = tensorflow(), keras()
    root_path = Path(root)
    root_path.mkdir(parents=True, exist_ok=True)
    X, y = synthetic_windows(768)
    mean = X.reshape(-1, CHANNELS).mean(0).astype(np.float32)
    std = X.reshape(-1, CHANNELS).std(0).astype(np.float32)
    xs = (X - mean) / std
    k.utils.set_random_seed(0)
    model = build_model("cnn_lstm", n_channels=CHANNELS, conv=(8, 12), units=12)
    model.compile(k.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(xs, y, epochs=epochs, batch_size=32, verbose=0)
    deploy = export_copy(model)
    deploy.save(root_path / "model.keras")

    def converter():
        return tf.lite.TFLiteConverter.from_keras_model(deploy)

    files = {"float32": "model_float32.tflite", "float16": "model_float16.tflite", "int8": "model_int8.tflite"}
    (root_path / files["float32"]).write_bytes(converter().convert())
    c16 = converter()
    c16.optimizations = [tf.lite.Optimize.DEFAULT]
    c16.target_spec.supported_types = [tf.float16]
    (root_path / files["float16"]).write_bytes(c16.convert())
    c8 = converter()
    c8.optimizations = [tf.lite.Optimize.DEFAULT]
    c8.representative_dataset = lambda: ([xs[i : i + 1]] for i in range(0, 400, 2))
    c8.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c8.inference_input_type = c8.inference_output_type = tf.int8
    (root_path / files["int8"]).write_bytes(c8.convert())

    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(root_path / files["int8"]))
    (in_scale, in_zero), (out_scale, out_zero) = (
        it.get_input_details()[0]["quantization"], it.get_output_details()[0]["quantization"])  # fmt: skip
    mul, add = quantize_params(mean, std, in_scale, in_zero)
    spec = FrontEndSpec()
    manifest = {
        "format": "harlite-bundle",
        "format_version": 1,
        "name": "tiny",
        "labels": list(LABELS),
        "rate_hz": spec.rate_hz,
        "window": spec.window,
        "hop": spec.hop,
        "raw_channels": [{"name": n, "unit": u} for n, u in zip(RAW_CHANNELS, RAW_UNITS)],
        "frontend": spec.to_dict(),
        "normalization": {"mean": mean.tolist(), "std": std.tolist()},
        "quantization": {
            "input": {"scale": in_scale, "zero_point": in_zero, "input_mul": mul.tolist(), "input_add": add.tolist()},
            "output": {"scale": out_scale, "zero_point": out_zero},
        },
        "artifacts": {
            "keras": artifact_entry(root_path / "model.keras", root_path),
            **{kind: artifact_entry(root_path / name, root_path) for kind, name in files.items()},
        },
    }
    write_json(root_path / "manifest.json", manifest)
    return root_path


def copy_bundle(bundle: Path, dest: Path) -> Path:
    """A writable copy of a bundle."""
    shutil.copytree(bundle, dest)
    return dest


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only tiny bundle (see the module docstring)."""
    return build_tiny_bundle(str(tmp_path_factory.getbasetemp() / "tiny_bundle"))

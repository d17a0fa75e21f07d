"""harlite.run.runtimes on a real tiny bundle: Keras, LiteRT (float32, float16, int8) and TFLite Micro."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from fixtures_bundle import bundle_windows

from harlite.bundle.loader import load_bundle
from harlite.core.frontend import quantize
from harlite.errors import HarliteError
from harlite.run.runtimes import KINDS, open_runtime, runtime_for


@pytest.fixture(scope="module")
def windows(tiny_bundle, _session_cache):  # noqa: F811
    return bundle_windows(tiny_bundle, 120, _session_cache)


@pytest.fixture(scope="module")
def predictions(tiny_bundle, windows):  # noqa: F811
    return {kind: open_runtime(tiny_bundle, kind).predict(windows.X) for kind in KINDS}


def test_every_runtime_gives_probabilities(predictions, windows):
    for kind, p in predictions.items():
        assert p.shape == (len(windows), 6) and p.dtype == np.float32, kind
        assert np.allclose(p.sum(axis=1), 1.0, atol=0.03), kind


def test_float_runtimes_match_keras_and_int8_stays_close(predictions):
    keras = predictions["keras"]
    assert np.abs(predictions["litert-float32"] - keras).max() < 1e-5
    assert np.abs(predictions["litert-float16"] - keras).max() < 1e-2
    for kind in ("litert-int8", "tflm"):
        assert np.abs(predictions[kind] - keras).mean() < 0.02, kind
        assert (predictions[kind].argmax(1) == keras.argmax(1)).mean() >= 0.95, kind


def test_int8_runtimes_quantize_like_the_firmware(tiny_bundle, windows):  # noqa: F811
    bundle = load_bundle(tiny_bundle)
    manifest = bundle.manifest
    norm, quant = manifest["normalization"], manifest["quantization"]
    q = quantize(windows.X[:5], np.array(norm["mean"]), np.array(norm["std"]),
                 quant["input"]["scale"], quant["input"]["zero_point"])  # fmt: skip
    for kind in ("litert-int8", "tflm"):
        runtime = open_runtime(bundle, kind)
        raw = np.array([runtime.invoke_int8(x) for x in q])
        assert raw.dtype == np.int8 and raw.shape == (5, 6)
        expected = (raw.astype(np.float32) - quant["output"]["zero_point"]) * np.float32(quant["output"]["scale"])
        np.testing.assert_array_equal(runtime.predict(windows.X[:5]), expected)
    assert not hasattr(open_runtime(bundle, "litert-float32"), "invoke_int8")


def test_lstm_state_is_reset_before_every_window(tiny_bundle, windows):  # noqa: F811
    bundle = load_bundle(tiny_bundle)
    manifest = bundle.manifest
    window = windows.X[:1]
    for kind in ("litert-int8", "tflm", "litert-float32"):
        runtime = open_runtime(bundle, kind)
        first, again = runtime.predict(np.concatenate([window, windows.X[1:4], window]))[[0, 4]]
        np.testing.assert_array_equal(first, again)
    # ...and the reset is needed: without it the fused LSTM carries its state into the next invoke.
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tiny_bundle / "model_float32.tflite"))
    it.allocate_tensors()
    x = (window - np.float32(manifest["normalization"]["mean"])) / np.float32(manifest["normalization"]["std"])
    outs = []
    for _ in range(2):
        it.set_tensor(it.get_input_details()[0]["index"], x.astype(np.float32))
        it.invoke()
        outs.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    assert np.abs(outs[0] - outs[1]).max() > 1e-6


def test_tflm_is_fast_enough_for_the_simulator(tiny_bundle, windows):  # noqa: F811
    runtime = open_runtime(tiny_bundle, "tflm")
    start = time.perf_counter()
    runtime.predict(windows.X)
    rate = len(windows) / (time.perf_counter() - start)
    assert rate >= 500, f"{rate:.0f} windows/s"
    assert runtime.invokes == len(windows) and 0 < runtime.ms_per_invoke < 2


def _edited_bundle(tiny_bundle, tmp_path, edit):  # noqa: F811
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def test_model_and_manifest_shape_mismatch_is_a_clear_error(tiny_bundle, tmp_path):  # noqa: F811
    bundle = _edited_bundle(tiny_bundle, tmp_path, lambda m: m["frontend"]["channels"].pop())
    with pytest.raises(HarliteError, match="frontend.units"):  # the loader refuses such a manifest first
        open_runtime(bundle, "tflm")
    loaded = load_bundle(tiny_bundle)
    manifest = {**loaded.manifest, "window": 64}  # a run folder's protocol.json that does not fit the model
    for kind in ("tflm", "litert-int8", "litert-float32", "keras"):
        model = loaded.keras_model() if kind == "keras" else loaded.read(KINDS[kind])
        with pytest.raises(HarliteError, match=r"takes input .*128, 9.*64, 9"):
            runtime_for(manifest, kind, model, "model")


def test_quantization_mismatch_is_a_clear_error(tiny_bundle, tmp_path):  # noqa: F811
    bundle = _edited_bundle(tiny_bundle, tmp_path, lambda m: m["quantization"]["input"].update(zero_point=5))
    with pytest.raises(HarliteError, match="quantization.input"):
        open_runtime(bundle, "tflm")


def test_bad_requests_are_clear_errors(tiny_bundle, windows, tmp_path):  # noqa: F811
    with pytest.raises(HarliteError, match="unknown runtime"):
        open_runtime(tiny_bundle, "onnx")
    runtime = open_runtime(tiny_bundle, "tflm")
    with pytest.raises(HarliteError, match=r"\(n, 128, 9\)"):
        runtime.predict(windows.X[:, :64])
    with pytest.raises(HarliteError, match="int8 window"):
        runtime.invoke_int8(windows.X[0])
    bundle = shutil.copytree(tiny_bundle, tmp_path / "missing")
    (bundle / "model_int8.tflite").unlink()
    with pytest.raises(HarliteError, match="missing"):
        open_runtime(bundle, "litert-int8")

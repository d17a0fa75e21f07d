"""Convert a tiny trained model into a bundle and evaluate it in real LiteRT against hand-computed scores."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.schema_py_generated import Model
from click.testing import CliRunner
from test_train_qat import tiny_split

from harlite.bundle.loader import load_bundle
from harlite.bundle.run_folder import load_model
from harlite.core.frontend import quantize, standardize
from harlite.data.windows import Split
from harlite.errors import HarliteError
from harlite.io.hashing import sha256_file
from harlite.pipeline.train import TrainConfig, train

TINY = TrainConfig(epochs=1, batch_size=32, options={"conv": (4, 6), "units": 6})


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    return tiny_split(tmp_path_factory.mktemp("cache"), every=6)


@pytest.fixture(scope="module")
def bundle(split: Split, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harlite.pipeline.convert import convert

    run = tmp_path_factory.mktemp("run")
    train(run, TINY, split=split)
    out = tmp_path_factory.mktemp("bundle")
    convert(run, out, calibration=40, split=split, force=True)
    return out


def test_bundle_files_and_manifest(bundle: Path) -> None:
    from harlite.pipeline.convert import FUSED_LSTM, io_details, tflite_ops

    manifest = load_bundle(bundle).manifest
    for kind, artifact in manifest["artifacts"].items():
        path = bundle / artifact["file"]
        assert path.stat().st_size == artifact["bytes"] and sha256_file(path) == artifact["sha256"], kind
    int8 = (bundle / "model_int8.tflite").read_bytes()
    io = io_details(int8)
    assert io["input"]["dtype"] == io["output"]["dtype"] == "int8"
    assert io["input"]["shape"] == [1, 128, 9]
    assert FUSED_LSTM in manifest["ops"] and manifest["ops"] == tflite_ops(int8)
    model = Model.GetRootAsModel(int8, 0)  # no leftovers: every buffer with data belongs to a tensor
    graph = model.Subgraphs(0)
    used = {graph.Tensors(t).Buffer() for t in range(graph.TensorsLength())}
    used |= {model.Metadata(m).Buffer() for m in range(model.MetadataLength())}
    assert all(b in used for b in range(model.BuffersLength()) if model.Buffers(b).DataLength())
    assert io_details((bundle / "model_float32.tflite").read_bytes())["input"]["dtype"] == "float32"
    q = manifest["quantization"]
    assert (q["input"]["scale"], q["input"]["zero_point"]) == (io["input"]["scale"], io["input"]["zero_point"])
    assert (q["output"]["scale"], q["output"]["zero_point"]) == (io["output"]["scale"], io["output"]["zero_point"])
    std = np.array(manifest["normalization"]["std"])
    np.testing.assert_allclose(q["input"]["input_mul"], 1 / (std * q["input"]["scale"]), rtol=1e-6)
    assert manifest["frontend"]["channels"][0] == "body_acc_x" and manifest["window"] == 128
    assert manifest["model"]["macs_per_window"] > 0 and manifest["metrics"]["float"]["split"] == "test"


def test_every_input_channel_spans_the_int8_range(bundle: Path, split: Split) -> None:
    """Each channel of the calibration windows reaches the edge of the int8 input, not just the widest."""
    from harlite.pipeline.convert import calibration_windows

    manifest = load_bundle(bundle).manifest
    mean, std = (np.array(manifest["normalization"][k], np.float32) for k in ("mean", "std"))
    peaks = np.abs(calibration_windows(split.pool, mean, std, 40)).max(axis=(0, 1))
    steps = peaks / manifest["quantization"]["input"]["scale"]
    assert steps.min() >= 127 and steps.max() <= 256, steps


@pytest.mark.parametrize(
    ("architecture", "options"), [("cnn_lstm", {"conv": (4, 6), "units": 6}), ("lstm", {"units": 6})]
)
def test_spread_input_ranges_keeps_the_model_function(architecture: str, options: dict) -> None:
    from harlite.pipeline.convert import spread_input_ranges
    from harlite.pipeline.models import build_model

    model = build_model(architecture, **options)
    ranges = np.geomspace(0.3, 10, 9, dtype=np.float32)
    x = np.random.default_rng(0).normal(size=(8, 128, 9)).astype(np.float32) * ranges
    std = np.full(9, 0.5, np.float32)
    before = model.predict(x, verbose=0)
    spread, std2 = spread_input_ranges(model, std, x)
    x2 = x * std / std2
    peaks = np.abs(x2).max(axis=(0, 1))
    np.testing.assert_allclose(peaks, peaks.max(), rtol=1e-6)
    assert std2[-1] == std[-1] and np.all(std2[:-1] < std[:-1])  # only narrower channels are scaled up
    np.testing.assert_allclose(spread.predict(x2, verbose=0), before, atol=1e-5)
    assert spread_input_ranges(spread, std2, x2)[1] is std2  # idempotent


def test_conversion_is_deterministic(bundle: Path, split: Split, tmp_path: Path) -> None:
    from harlite.pipeline.convert import convert

    convert(bundle / "model.keras", tmp_path, calibration=40, split=split)
    for name in ("model_int8.tflite", "model_float32.tflite", "model_float16.tflite"):
        assert (tmp_path / name).read_bytes() == (bundle / name).read_bytes(), name
    metrics = load_bundle(bundle).manifest["metrics"]  # a bundle's model converted again keeps its metrics
    assert metrics["float"]["accuracy"] > 0 and load_bundle(tmp_path).manifest["metrics"] == metrics
    with pytest.raises(HarliteError, match="--force"):
        convert(bundle / "model.keras", tmp_path, calibration=40, split=split)


def test_evaluate_agrees_with_hand_computed_accuracy(bundle: Path, split: Split, tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from harlite.pipeline.evaluate import evaluate

    report = evaluate(bundle, out=tmp_path, split=split)
    test = split.test
    manifest = load_bundle(bundle).manifest
    mean, std = np.array(manifest["normalization"]["mean"]), np.array(manifest["normalization"]["std"])
    keras_pred = load_model(bundle / "model.keras").predict(standardize(test.X, mean, std), verbose=0).argmax(1)
    interpreter = Interpreter(model_path=str(bundle / "model_int8.tflite"))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    int8_pred = []
    for q in quantize(test.X, mean, std, *inp["quantization"]):
        interpreter.reset_all_variables()
        interpreter.set_tensor(inp["index"], q[None])
        interpreter.invoke()
        int8_pred.append(int(interpreter.get_tensor(out["index"])[0].argmax()))
    results = report["results"]
    assert set(results) == {"keras", "int8", "float32", "float16"}
    assert results["keras"]["accuracy"] == pytest.approx(np.mean(keras_pred == test.y))
    assert results["int8"]["accuracy"] == pytest.approx(np.mean(np.array(int8_pred) == test.y))
    assert results["float32"]["accuracy"] == pytest.approx(results["keras"]["accuracy"], abs=1 / len(test))
    assert results["int8"]["n"] == len(test)
    assert (tmp_path / "evaluation.json").exists() and (tmp_path / "confusion_int8.png").stat().st_size > 0


def test_evaluate_a_single_tflite_via_the_cli(bundle: Path, split: Split, monkeypatch) -> None:
    import harlite.cli.train
    from harlite.cli import main

    real = harlite.cli.train.evaluate_artifact
    monkeypatch.setattr(harlite.cli.train, "evaluate_artifact", lambda *a, **k: real(*a, **k, split=split))
    result = CliRunner().invoke(main, ["evaluate", str(bundle / "model_int8.tflite"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"model_int8"' in result.output and '"accuracy"' in result.output


def test_bad_input_gives_a_clear_error(bundle: Path, tmp_path: Path) -> None:
    from harlite.cli import main
    from harlite.pipeline.convert import to_float
    from harlite.pipeline.models import build_model

    runner = CliRunner()
    missing = runner.invoke(main, ["evaluate", str(tmp_path / "nope.tflite")])
    assert missing.exit_code == 2 and "does not exist" in missing.output and "Traceback" not in missing.output
    no_model = runner.invoke(main, ["convert", str(tmp_path), "--out", str(tmp_path / "b")])
    assert no_model.exit_code == 2 and "holds no model.keras" in no_model.output
    shutil.copy(bundle / "manifest.json", tmp_path / "manifest.json")
    (tmp_path / "short.tflite").write_bytes(to_float(build_model(window=64, conv=(4, 4), units=4)))
    wrong = runner.invoke(main, ["evaluate", str(tmp_path / "short.tflite")])
    assert wrong.exit_code == 2 and "[1, 64, 9]" in wrong.output and "[1, 128, 9]" in wrong.output
    (tmp_path / "junk.tflite").write_bytes(b"not a model")
    junk = runner.invoke(main, ["evaluate", str(tmp_path / "junk.tflite")])
    assert junk.exit_code == 2 and "not a valid .tflite" in junk.output

"""Training and QAT on a few hundred real HAPT windows with a tiny model: run folder, reproducibility,
the LSTM's weights on the int8 grid, and the converter keeping that grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_bundle import thinned

from harlite.bundle.run_folder import load_model, read_model_input
from harlite.data.windows import DataSpec, Split, load_split
from harlite.errors import HarliteError
from harlite.pipeline.train import TrainConfig, train

TINY = TrainConfig(epochs=2, batch_size=32, options={"conv": (4, 6), "units": 6})
# three training subjects, one validation subject, two test subjects
TRAIN, VAL, TEST = ("1", "3", "6"), ("5",), ("2", "4")


def tiny_split(cache: Path, every: int = 5) -> Split:
    """Every ``every``-th window of a few real HAPT subjects, two of them the test split."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(cache))
        split = load_split(DataSpec(test_subjects=TEST))
    return thinned(split, TRAIN, VAL, TEST, every)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    return tiny_split(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def run(split: Split, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(out, TINY, split=split)
    return out


def test_train_writes_a_complete_run_folder(run: Path, split: Split) -> None:
    for name in ("model.keras", "protocol.json", "history.json", "metrics.json", "learning_curves.png",
                 "confusion.png"):  # fmt: skip
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]["float"]
    assert test["n"] == len(split.test) and set(split.test.group.tolist()) == {"2", "4"}
    assert 0.0 <= test["accuracy"] <= 1.0 and "macro_f1" in test and len(test["confusion"]) == 6
    assert set(test["per_class"]) == set(split.protocol.labels)
    groups = metrics["split"]
    assert groups["test"] == ["2", "4"] and len(groups["val"]) == 1 and len(groups["train"]) == 3
    assert not set(groups["val"]) & set(groups["train"])
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2] and "val_accuracy" in history[0]
    model_input = read_model_input(run)
    assert model_input.protocol == split.protocol and model_input.data == split.spec
    train_X = split.train.X
    np.testing.assert_allclose(model_input.mean, train_X.reshape(-1, 9).mean(0), rtol=1e-4, atol=1e-5)


def test_training_is_reproducible_and_refuses_to_overwrite(run: Path, split: Split, tmp_path: Path) -> None:
    train(tmp_path, TINY, split=split)
    a, b = load_model(run / "model.keras"), load_model(tmp_path / "model.keras")
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(HarliteError, match="--force"):
        train(tmp_path, TINY, split=split)


def test_settings_follow_the_amount_of_data(split: Split) -> None:
    """Small data gets more epochs and smaller batches (about 6,000 steps), HAPT the measured 80 x 64."""
    from harlite.data.windows import WindowSet

    def windows(n: int, counts: tuple[int, ...] = ()) -> WindowSet:
        y = np.concatenate([np.full(c, i) for i, c in enumerate(counts)]) if counts else np.arange(n) % 4
        return WindowSet(np.zeros((len(y), 1, 1), np.float32), y, np.zeros(len(y), str))

    hapt = TrainConfig().for_data(windows(5705), 6)
    assert (hapt.epochs, hapt.batch_size, hapt.class_weights) == (80, 64, False)
    small = TrainConfig().for_data(windows(300), 4)
    assert small.batch_size == 32 and small.epochs == 400 and small.epochs * -(-300 // 32) >= 3000
    tiny = TrainConfig().for_data(windows(100), 4)
    assert tiny.batch_size == 16
    assert TrainConfig().for_data(windows(0, (300, 50, 40)), 3).class_weights
    assert TrainConfig(epochs=3, class_weights=False).for_data(windows(0, (300, 50, 40)), 3).epochs == 3


def test_qat_puts_the_lstm_on_the_int8_grid_and_the_converter_keeps_it(run: Path, split: Split) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from harlite.core.frontend import standardize
    from harlite.pipeline.convert import FUSED_LSTM, calibration_windows, tflite_ops, to_int8
    from harlite.pipeline.models import export_copy
    from harlite.pipeline.qat import quantize_aware, quantized_copy
    from harlite.tf import keras

    model_input = read_model_input(run)
    mean, std, windows = model_input.mean, model_input.std, split.pool
    float_model = load_model(run / "model.keras")
    qat_model = quantize_aware(export_copy(float_model, batch_size=None))
    qat_model.compile(keras().optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    qat_model.fit(standardize(windows.X, mean, std), windows.y, epochs=1, batch_size=32, verbose=0)
    model = quantized_copy(qat_model, export_copy(float_model, batch_size=None))
    kernel, recurrent, _ = model.get_layer("lstm").get_weights()
    for w in (kernel, recurrent):
        gates = w.reshape(w.shape[0], 4, -1)
        scale = np.abs(gates).max(axis=(0, 2)) / 127
        steps = gates / scale[None, :, None]
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
        assert len(np.unique(np.round(steps))) > 20  # really quantized weights, not zeros
    conv = model.get_layer("conv0").get_weights()[0]
    steps = conv / (np.abs(conv).max(axis=(0, 1)) / 127)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    # QAT changed the weights (it trained), and the converter quantizes them onto exactly this grid.
    assert not np.allclose(kernel, export_copy(float_model).get_layer("lstm").get_weights()[0])
    data = to_int8(model, calibration_windows(windows, mean, std, 50))
    assert FUSED_LSTM in tflite_ops(data)
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    stored = [
        interpreter.get_tensor(d["index"]).astype(np.float64) * d["quantization_parameters"]["scales"][0]
        for d in interpreter.get_tensor_details()
        if d["dtype"] == np.int8 and len(d["shape"]) == 2 and len(d["quantization_parameters"]["scales"]) == 1
    ]
    units = recurrent.shape[0]
    for w in (kernel, recurrent):
        for g in range(4):
            block = w[:, g * units : (g + 1) * units].T
            assert any(s.shape == block.shape and np.allclose(s, block, rtol=1e-5, atol=1e-7) for s in stored)


def test_qat_command_reports_ptq_and_qat_and_keeps_the_better(run: Path, split: Split) -> None:
    from harlite.pipeline.convert import FUSED_LSTM, io_details, tflite_ops
    from harlite.pipeline.qat import qat

    metrics = qat(run, epochs=1, calibration=64, split=split)
    out = run / "qat"
    assert metrics["chosen"] in ("qat", "ptq")
    val = metrics["val"]
    better = "qat_int8" if val["qat_int8"]["accuracy"] >= val["ptq_int8"]["accuracy"] else "ptq_int8"
    assert metrics["chosen"] == better[:3]
    assert metrics["test"]["int8"] == metrics["test"][better]
    for name in ("model_int8.tflite", "ptq_int8.tflite", "qat_int8.tflite"):
        data = (out / name).read_bytes()
        assert FUSED_LSTM in tflite_ops(data)
        io = io_details(data)
        assert io["input"]["dtype"] == io["output"]["dtype"] == "int8"
    assert (out / "model_int8.tflite").read_bytes() == (out / f"{better[:3]}_int8.tflite").read_bytes()
    assert load_model(out / "model.keras").input_shape == (None, 128, 9)
    assert [row["epoch"] for row in metrics["qat"]["history"]] == [1]
    assert "ptq_int8" in metrics["reason"] or "PTQ" in metrics["reason"]


def test_qat_command_defaults_are_the_library_defaults() -> None:
    """The lazy CLI repeats the defaults (it does not import TensorFlow for --help); they must not drift."""
    from harlite.cli.train import qat as qat_command
    from harlite.pipeline.convert import CALIBRATION_WINDOWS
    from harlite.pipeline.qat import QAT_EPOCHS, QAT_LEARNING_RATE

    defaults = {p.name: p.default for p in qat_command.params}
    assert (defaults["epochs"], defaults["learning_rate"]) == (QAT_EPOCHS, QAT_LEARNING_RATE)
    assert defaults["calibration"] == CALIBRATION_WINDOWS

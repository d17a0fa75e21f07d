"""harlite.codegen.targets on real flatbuffers: tiny models converted with per-channel and per-tensor dense
weights, read independently with LiteRT, and models with constructs the 2023 Arduino TFLM lacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tensorflow.lite.python.schema_py_generated import TensorType

from harlite.codegen.targets import DEFAULT_TARGET, TARGETS, check_model, get_target, require_compatible
from harlite.errors import BundleError

ARDUINO, WHEEL = "tflm-arduino-2023.02", "tflm-2026"


@pytest.fixture(scope="module")
def converted() -> dict[str, bytes]:
    """A tiny untrained CNN-LSTM (with a dense bias) converted to int8 both ways, on random standardized windows."""
    from harlite.pipeline.convert import to_int8
    from harlite.pipeline.models import build_model
    from harlite.tf import keras

    keras().utils.set_random_seed(0)
    model = build_model(window=64, conv=(4, 4), units=4)
    rng = np.random.default_rng(0)
    dense = model.get_layer("classes")
    dense.set_weights([dense.get_weights()[0], rng.normal(0, 0.1, 6)])  # a zero bias would be left out
    calibration = rng.standard_normal((16, 64, 9)).astype(np.float32)
    return {
        "per_channel": to_int8(model, calibration, per_channel_dense=True),
        "per_tensor": to_int8(model, calibration),
    }


def dense_weight_scales(model: bytes) -> np.ndarray:
    """The FULLY_CONNECTED weight scales as LiteRT reads them (not through harlite.codegen.targets)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    (dense,) = [op for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]
    weights = interpreter.get_tensor_details()[int(dense["inputs"][1])]
    assert weights["dtype"] == np.int8 and tuple(weights["shape"]) == (6, 4)
    return weights["quantization_parameters"]["scales"]


def test_per_channel_dense_weights_fail_on_the_arduino_library_only(converted: dict[str, bytes]) -> None:
    scales = dense_weight_scales(converted["per_channel"])
    assert len(scales) == 6 and len(np.unique(scales)) > 1  # one scale per class, really different
    problems = check_model(converted["per_channel"], ARDUINO)
    assert len(problems) == 1
    assert "FULLY_CONNECTED" in problems[0] and "per-channel" in problems[0] and "per-tensor" in problems[0]
    assert check_model(converted["per_channel"], WHEEL) == []
    with pytest.raises(BundleError, match="model.tflite would not run in tflm-arduino-2023.02.*per-channel weights"):
        require_compatible(converted["per_channel"], ARDUINO, "model.tflite")
    require_compatible(converted["per_channel"], WHEEL)


def test_per_tensor_dense_weights_pass_both_targets(converted: dict[str, bytes]) -> None:
    assert len(dense_weight_scales(converted["per_tensor"])) == 1
    for target in TARGETS:
        assert check_model(converted["per_tensor"], target) == [], target


def test_the_default_target_is_the_arduino_library_and_needs_per_tensor_weights() -> None:
    assert DEFAULT_TARGET == ARDUINO
    assert not get_target(ARDUINO).per_channel_dense and get_target(WHEEL).per_channel_dense


def test_an_op_the_2023_resolver_lacks_fails_there_only() -> None:
    from harlite.tf import tensorflow

    tf = tensorflow()

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 3], tf.float32)])
    def smallest(x: object) -> object:
        return tf.reduce_min(x, axis=1)

    model = tf.lite.TFLiteConverter.from_concrete_functions([smallest.get_concrete_function()], smallest).convert()
    (problem,) = check_model(model, ARDUINO)
    assert problem.startswith("REDUCE_MIN is not in the op resolver of tflm-arduino-2023.02")
    assert check_model(model, WHEEL) == []


def edited(model: bytes, op_name: str, edit: Callable[[Any, Any], None]) -> bytes:
    """``model`` with ``edit(subgraph, op)`` applied to its one ``op_name`` operator."""
    from tensorflow.lite.python.schema_py_generated import BuiltinOperator
    from tensorflow.lite.tools import flatbuffer_utils

    root = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    code = getattr(BuiltinOperator, op_name)
    subgraph = root.subgraphs[0]
    (op,) = [op for op in subgraph.operators if root.operatorCodes[op.opcodeIndex].builtinCode == code]
    edit(subgraph, op)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(root))


def set_slice_offset(subgraph: Any, op: Any) -> None:
    assert not op.builtinOptions.offset
    op.builtinOptions.offset = True


def set_bias_int64(subgraph: Any, op: Any) -> None:
    bias = subgraph.tensors[op.inputs[2]]
    assert op.inputs[2] >= 0 and bias.type == TensorType.INT32
    bias.type = TensorType.INT64


def set_weights_bfloat16(subgraph: Any, op: Any) -> None:
    subgraph.tensors[op.inputs[1]].type = TensorType.BFLOAT16


@pytest.mark.parametrize(
    ("op_name", "edit", "words"),
    [("STRIDED_SLICE", set_slice_offset, ("STRIDED_SLICE", "offset")),
     ("FULLY_CONNECTED", set_bias_int64, ("FULLY_CONNECTED", "bias of TensorType 4")),
     ("FULLY_CONNECTED", set_weights_bfloat16, ("TensorType 18", "newer"))],
)  # fmt: skip
def test_constructs_newer_than_the_2023_schema_fail_on_the_arduino_library(
    converted: dict[str, bytes], op_name: str, edit: Callable[[Any, Any], None], words: tuple[str, ...]
) -> None:
    data = edited(converted["per_tensor"], op_name, edit)
    (problem,) = check_model(data, ARDUINO)
    assert all(word in problem for word in words), problem
    assert check_model(data, WHEEL) == []


def test_unknown_target_is_refused_naming_the_known_ones(converted: dict[str, bytes]) -> None:
    with pytest.raises(BundleError, match="unknown TFLM target 'tflm-1999'.*tflm-arduino-2023.02, tflm-2026"):
        check_model(converted["per_tensor"], "tflm-1999")

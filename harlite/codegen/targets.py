"""The TensorFlow Lite Micro builds a bundle's int8 model may target, and what each cannot run.

A bundle names its target in ``manifest.json`` (``tflm.target``). ``check_model(model, target)``
reads the .tflite flatbuffer and lists the constructs known to fail or to compute other numbers in
that target than in the 2026 ``tflite-micro`` wheel that ``harlite parity`` certifies; an empty list
means none is known. The reasoning, with the kernel sources and commits read, is in docs/parity.md
("The board's TFLM").

- ``tflm-arduino-2023.02`` (the default): the Arduino library ``tflite-micro-arduino-examples`` @
  7948b85, TFLM synced from tflite-micro 2023-02-27, which the sketch builds against. Its
  FULLY_CONNECTED kernels apply the first of per-channel weight scales to every output channel.
- ``tflm-2026``: the ``tflite-micro`` Python wheel (reference kernels), which runs today's converter
  output as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harlite.errors import BundleError

# TFLite builtin op -> tflite::MicroMutableOpResolver method, from tensorflow/tflite-micro
# tensorflow/lite/micro/micro_mutable_op_resolver.h (commit 90b983c, 2026-08-20).
OP_RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu", "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill",
    "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish", "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable", "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv", "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack", "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}  # fmt: skip

# Ops that tflite::MicroMutableOpResolver gained after 2023-02-27: every other op of
# OP_RESOLVER_METHODS (commit 90b983c) has a method of the same name in the Arduino library's
# src/tensorflow/lite/micro/micro_mutable_op_resolver.h @ 7948b85.
_OPS_AFTER_2023_02 = frozenset(
    {"BATCH_MATMUL", "DYNAMIC_UPDATE_SLICE", "EMBEDDING_LOOKUP", "REDUCE_ALL", "REDUCE_MIN", "REVERSE_V2"}
)
# The last TensorType of the 2023 schema (INT4 = 17); later ones: BFLOAT16, INT2, UINT4, FLOAT8...
_INT4 = 17
_INT8_KERNELS_WITH_BIAS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class Target:
    """One TFLM build: its op resolver's ops and the flatbuffer constructs it reads correctly."""

    name: str
    library: str
    ops: frozenset[str]
    per_channel_dense: bool  # reads per-channel FULLY_CONNECTED weights, so convert may write them
    max_tensor_type: int | None  # highest TensorType its schema knows (None: any the wheel knows)
    strided_slice_offset: bool  # reads StridedSliceOptions.offset (end = begin + size)
    int8_bias_types: tuple[int, ...] | None  # bias types its int8 conv/FC kernels read (None: not checked)
    caveats: tuple[str, ...] = ()  # known differences no conversion option avoids


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            name="tflm-arduino-2023.02",
            library="tflite-micro-arduino-examples @ 7948b85 (TFLM synced 2023-02-27), what the sketch builds against",
            ops=frozenset(OP_RESOLVER_METHODS) - _OPS_AFTER_2023_02,
            per_channel_dense=False,
            max_tensor_type=_INT4,
            strided_slice_offset=False,
            int8_bias_types=(2,),  # TensorType.INT32
            caveats=(
                "UNIDIRECTIONAL_SEQUENCE_LSTM: its inter-gate multipliers use 2^-15 written as the float "
                "0.00003051757, one ULP below, so a product on a rounding tie comes out 1 LSB nearer zero "
                "(tflite-micro fixed it in 8e73251, 2023-04-15)",
                "UNIDIRECTIONAL_SEQUENCE_LSTM with a cell-state scale below 2^-12: the cell tanh truncates "
                "its input by the missing shift instead of rounding (tflite-micro dd85647, 2023-03-01)",
            ),
        ),
        Target(
            name="tflm-2026",
            library="the tflite-micro Python wheel of 2026 (reference kernels), what 'harlite parity' runs",
            ops=frozenset(OP_RESOLVER_METHODS),
            per_channel_dense=True,
            max_tensor_type=None,
            strided_slice_offset=True,
            int8_bias_types=None,
        ),
    )
}
DEFAULT_TARGET = "tflm-arduino-2023.02"


def model_ops(model: bytes) -> list[str]:
    """Sorted builtin op names of a .tflite flatbuffer (every subgraph); a custom op is a clear error."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    root = schema.Model.GetRootAsModel(model, 0)
    codes = [root.OperatorCodes(i) for i in range(root.OperatorCodesLength())]
    used = set()
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            code = codes[subgraph.Operators(o).OpcodeIndex()]
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if names[builtin] == "CUSTOM":
                raise BundleError(
                    f"the model uses the custom op {code.CustomCode().decode()!r}, which harlite cannot register "
                    "for TFLite Micro: convert with builtin ops only."
                )
            used.add(names[builtin])
    return sorted(used)


def get_target(name: str) -> Target:
    """The target called ``name``; an unknown name is a clear error listing the known ones."""
    if name not in TARGETS:
        raise BundleError(f"unknown TFLM target {name!r}: choose one of {', '.join(TARGETS)}.")
    return TARGETS[name]


def check_model(model: bytes, target: str) -> list[str]:
    """Human-readable problems of the .tflite ``model`` in ``target`` (empty when none is known)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    spec = get_target(target)
    problems = [
        f"{op} is not in the op resolver of {spec.name} ({spec.library}): change the model to avoid it "
        f"or target {_others(spec)}."
        for op in model_ops(model)
        if op not in spec.ops
    ]
    root = schema.Model.GetRootAsModel(model, 0)
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            code = root.OperatorCodes(op.OpcodeIndex())
            name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            problems += _op_problems(schema, spec, subgraph, op, name, f"{name} (operator {o} of subgraph {s})")
        problems += _tensor_problems(spec, subgraph, s)
    problems += [
        f"buffer {b} keeps its data outside the flatbuffer (offset {root.Buffers(b).Offset()}), which TFLM "
        "does not read: convert without buffer offsets (the default for models under 2 GB)."
        for b in range(root.BuffersLength())
        if root.Buffers(b).Offset() > 1
    ]
    return problems


def require_compatible(model: bytes, target: str, what: str = "the int8 model") -> None:
    """Raise ``BundleError`` naming every problem of ``model`` in ``target`` (``check_model``)."""
    problems = check_model(model, target)
    if problems:
        raise BundleError(f"{what} would not run in {target} as 'harlite parity' certifies it: " + " ".join(problems))


def _op_problems(schema: Any, spec: Target, subgraph: Any, op: Any, name: str, where: str) -> list[str]:
    """The problems of one operator in ``spec``."""
    problems = []
    if name == "FULLY_CONNECTED" and not spec.per_channel_dense:
        scales = _scales(subgraph, op.Inputs(1))
        if scales > 1:
            problems.append(
                f"{where} has per-channel weights ({scales} scales), but {spec.name}'s fully-connected "
                "kernel applies the first scale to every output channel: re-convert with per-tensor dense "
                "weights ('harlite convert' writes them for this target)."
            )
    if name == "STRIDED_SLICE" and not spec.strided_slice_offset and op.BuiltinOptions() is not None:
        options = schema.StridedSliceOptions()
        options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        if options.Offset():
            problems.append(f"{where} sets 'offset' (end = begin + size), which {spec.name}'s schema does not "
                            "have, so it would slice to the wrong end: slice with explicit ends.")  # fmt: skip
    if name in _INT8_KERNELS_WITH_BIAS and spec.int8_bias_types is not None and op.InputsLength() > 2:
        data, bias = op.Inputs(0), op.Inputs(2)
        if data >= 0 and bias >= 0 and subgraph.Tensors(data).Type() == schema.TensorType.INT8:
            bias_type = subgraph.Tensors(bias).Type()
            if bias_type not in spec.int8_bias_types:
                problems.append(f"{where} has an int8 input with a bias of TensorType {bias_type}, but "
                                f"{spec.name} reads int8 biases as int32: convert with int32 biases.")  # fmt: skip
    return problems


def _tensor_problems(spec: Target, subgraph: Any, s: int) -> list[str]:
    if spec.max_tensor_type is None:
        return []
    return [
        f"tensor {t} of subgraph {s} has TensorType {subgraph.Tensors(t).Type()}, newer than {spec.name}'s "
        f"schema: quantize it to a type of that schema (int8, int16, int32, float32)."
        for t in range(subgraph.TensorsLength())
        if subgraph.Tensors(t).Type() > spec.max_tensor_type
    ]


def _scales(subgraph: Any, tensor: int) -> int:
    quantization = subgraph.Tensors(tensor).Quantization() if tensor >= 0 else None
    return quantization.ScaleLength() if quantization is not None else 0


def _others(spec: Target) -> str:
    return " or ".join(name for name in TARGETS if name != spec.name)

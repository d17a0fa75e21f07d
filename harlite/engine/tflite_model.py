"""An int8 .tflite model read into tensors and operators (one subgraph), with the schema's enums."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harlite.errors import BundleError

# schema enums (tflite schema.fbs)
INT8, INT16, INT32 = 9, 7, 2
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH = 0, 1, 2, 3, 4
PADDING_SAME, PADDING_VALID = 0, 1


@dataclass
class Tensor:
    index: int
    shape: tuple[int, ...]
    type: int
    scales: np.ndarray
    zero_points: np.ndarray
    qdim: int
    data: np.ndarray | None
    variable: bool

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if len(self.zero_points) else 0


def read_model(model: bytes) -> tuple[list[Tensor], list[Any], list[int], list[int], dict[int, str]]:
    """Tensors, operators, graph inputs/outputs and op names of a one-subgraph .tflite model."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    try:
        m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    except Exception as e:  # a damaged flatbuffer raises anything from struct to IndexError
        raise BundleError(f"the model is not a readable .tflite flatbuffer ({type(e).__name__}).") from None
    if not m.subgraphs or len(m.subgraphs) != 1:
        raise BundleError("the C engine runs models of one subgraph: this .tflite has "
                          f"{len(m.subgraphs or [])}.")  # fmt: skip
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    sg = m.subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tensors):
        q = t.quantization
        data = None
        buf = m.buffers[t.buffer] if t.buffer < len(m.buffers) else None
        if buf is not None and buf.data is not None and len(buf.data):
            data = np.asarray(buf.data, np.uint8).tobytes()
        elif buf is not None and getattr(buf, "size", 0):
            raise BundleError("the model keeps tensor data outside the flatbuffer: the C engine cannot read it.")
        dtype = {INT8: np.int8, INT16: np.int16, INT32: np.int32}.get(t.type)
        array = np.frombuffer(data, dtype).copy() if data is not None and dtype is not None else None
        tensors.append(Tensor(
            index=i,
            shape=tuple(int(d) for d in (t.shape if t.shape is not None else [])),
            type=int(t.type),
            scales=np.asarray(q.scale if q is not None and q.scale is not None else [], np.float32),
            zero_points=np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64),
            qdim=int(q.quantizedDimension) if q is not None else 0,
            data=array,
            variable=bool(t.isVariable),
        ))  # fmt: skip
    ops = []
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        op.code = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        ops.append(op)
    return tensors, ops, [int(i) for i in sg.inputs], [int(i) for i in sg.outputs], names

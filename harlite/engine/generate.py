"""The generator: an int8 .tflite model in, the C99 sources of its engine out.

It reads the flatbuffer, checks that every construct is one the kernels implement (else a
``BundleError`` naming it: never wrong numbers), computes every requantization multiplier and shift as
TFLite Micro's Prepare does (in double, from the tensors' float32 scales), arranges the weights for
the kernels, plans the one static scratch buffer, and writes the op sequence as calls to the kernels
of ``harlite_engine_kernels.c``. Only numbers from the model reach the C text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harlite.errors import BundleError
from harlite.manifest import MARKER

KERNELS_DIR = Path(__file__).resolve().parent
KERNEL_FILES = ("harlite_engine_kernels.h", "harlite_engine_kernels.c")
HEADER, MODEL_C = "harlite_engine.h", "harlite_engine_model.c"

# schema enums (tflite schema.fbs)
INT8, INT16, INT32 = 9, 7, 2
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH = 0, 1, 2, 3, 4
PADDING_SAME, PADDING_VALID = 0, 1
GATE_Q = 2.0**-12  # LSTM gate pre-activations are Q3.12
GATE_OUT_Q = 2.0**-15  # their sigmoid/tanh outputs Q0.15
INT16_RANGE = (-32768, 32767)
INT8_RANGE = (-128, 127)


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


@dataclass
class Step:
    """One kernel call: its parameter struct (C), its call, what it reads and writes, its temporaries."""

    name: str
    source: int  # tensor read
    target: int  # tensor written
    struct: str  # C definition of the parameters
    call: str  # format string: {src}, {dst} and one field per temporary
    temps: list[tuple[str, int, str]] = field(default_factory=list)  # (field, bytes, member: b|h|w)
    in_place: int | None = None  # how far the output may start before the input (None: not in place)
    macs: int = 0


def kernel_sources() -> dict[str, str]:
    """The static kernels as they are copied beside the generated files (with harlite's marker first)."""
    return {name: f"/* {MARKER}: a copy of harlite/engine/{name} (do not edit; regenerate). */\n"
            + (KERNELS_DIR / name).read_text() for name in KERNEL_FILES}  # fmt: skip


# ---------------------------------------------------------------- arithmetic of TFLite's Prepare


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = m * 2^(shift - 31), m a Q0.31 int in [2^30, 2^31)."""
    if real < 0 or not math.isfinite(real):
        raise BundleError(f"a requantization scale of {real} is not a positive number: the model is broken.")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = math.floor(q * 2**31 + 0.5)  # std::round of a positive double
    if fixed == 2**31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(fixed), int(shift)


def f32(x: Any) -> float:
    """A float32 value as a Python float (exactly)."""
    return float(np.float32(x))


def f32_product(a: float, b: float) -> float:
    """a * b in float32 (TFLite's per-tensor GetQuantizedConvolutionMultipler), as a double."""
    return float(np.float32(a) * np.float32(b))


def round_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def activation_range(act: int, out: Tensor, qrange: tuple[int, int], where: str) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized (Quantize in float32)."""
    lo, hi = qrange

    def q(value: float) -> int:
        return out.zero_point + int(round_away(float(np.float32(value) / np.float32(out.scale))))

    if act == ACT_NONE:
        return lo, hi
    if act == ACT_RELU:
        return max(lo, q(0.0)), hi
    if act == ACT_RELU6:
        return max(lo, q(0.0)), min(hi, q(6.0))
    if act == ACT_RELU_N1_TO_1:
        return max(lo, q(-1.0)), min(hi, q(1.0))
    raise BundleError(f"{where}: fused activation {act} is not supported by the C engine "
                      "(none, relu, relu6, relu_n1_to_1 are).")  # fmt: skip


def sigmoid_table() -> list[int]:
    """TFLite's 256-entry uint16 table of sigmoid(i / 24): 65536 * sigmoid at the node plus half the
    error of linear interpolation at the midpoint after it (so that the interpolated curve is centred
    on the true one); the last node, 255/24, where the kernels saturate, is the uint16 maximum (the
    level tanh's saturation, 0xffff << 8, continues)."""

    def s(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    table = []
    for i in range(255):
        x0, x1 = i / 24, (i + 1) / 24
        error = s((x0 + x1) / 2) - (s(x0) + s(x1)) / 2
        table.append(round(65536 * (s(x0) + error / 2)))
    table.append(65535)
    return table


def softmax_constants() -> list[int]:
    """gemmlowp's fixed-point constants of exp and 1/(1+x), from their definitions: exp(-1/8) and 1/3
    (Q0.31), exp(-2^e) for e = -2..4 (Q0.31), 48/17 and -32/17 (Q2.29)."""
    q31 = [math.exp(-1 / 8), 1 / 3] + [math.exp(-(2.0**e)) for e in range(-2, 5)]
    return [round(v * 2**31) for v in q31] + [round(v * 2**29) for v in (48 / 17, -32 / 17)]


# ---------------------------------------------------------------- the flatbuffer


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


# ---------------------------------------------------------------- C text helpers


def c_array(ctype: str, name: str, values: Any, per_line: int = 12, hexa: bool = False) -> str:
    values = [int(v) for v in np.asarray(values).ravel()]
    if not values:
        values = [0]
    text = [f"0x{v:08x}u" if hexa else str(v) for v in values]
    lines = [", ".join(text[i : i + per_line]) for i in range(0, len(text), per_line)]
    return f"static const {ctype} {name}[{len(values)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def arrange_rows(w: np.ndarray, group: int = 4) -> np.ndarray:
    """int8 rows (n, d) -> the kernels' words: rows padded to ``group`` (4 or 2), length to 4, the rows of
    a group interleaved word by word (group, word, row), byte k of a word = value & 0xff << 8k."""
    n, d = w.shape
    rows, length = -(-n // group) * group, -(-d // 4) * 4
    padded = np.zeros((rows, length), np.int64)
    padded[:n, :d] = w
    b = (padded & 0xFF).reshape(rows, length // 4, 4)
    words = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16) | (b[..., 3] << 24)
    return words.reshape(rows // group, group, length // 4).transpose(0, 2, 1).reshape(-1).astype(np.uint32)


class Emitter:
    """Collects the model's constant arrays and parameter structs."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.weight_bytes = 0
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"hl_{stem}{self.count}"

    def array(self, ctype: str, stem: str, values: Any, hexa: bool = False) -> str:
        name = self.name(stem)
        values = np.asarray(values).ravel()
        self.parts.append(c_array(ctype, name, values, 8 if hexa else 12, hexa))
        self.weight_bytes += len(values) * {"uint32_t": 4, "int32_t": 4, "uint16_t": 2, "int8_t": 1}[ctype]
        return name

    def rows(self, w: np.ndarray, bias: np.ndarray | None, mults: list[int], shifts: list[int], out_zp: int,
             act: tuple[int, int], where: str, group: int = 4) -> str:  # fmt: skip
        """An ``hl_rows_t`` initializer for weight rows (n, d) in groups of ``group``; ``mults``/``shifts``
        hold one multiplier per block of n / len(mults) consecutive rows."""
        n, d = w.shape
        per = n // len(mults)
        if per not in (1, n) and per % group:  # the kernels change multiplier at the start of a group
            mults, shifts, per = list(np.repeat(mults, per)), list(np.repeat(shifts, per)), 1
        _check_rounding(w, bias, np.repeat(mults, per), np.repeat(shifts, per), where)
        words = self.array("uint32_t", "w", arrange_rows(w, group), hexa=True)
        b = self.array("int32_t", "bias", np.pad(bias, (0, -n % 4))) if bias is not None else "0"
        m = self.array("int32_t", "mult", mults)
        s = self.array("int8_t", "shift", shifts)
        return f"{{{words}, {b}, {m}, {s}, {per}, {n}, {-(-d // 4)}, {out_zp}, {act[0]}, {act[1]}}}"

    def struct(self, ctype: str, stem: str, body: str) -> str:
        name = self.name(stem)
        self.parts.append(f"static const {ctype} {name} = {body};\n")
        return name


# ---------------------------------------------------------------- the ops


def _int8(t: Tensor, what: str, where: str) -> None:
    if t.type != INT8:
        raise BundleError(f"{where}: the {what} is not int8: the C engine runs full-integer int8 models "
                          "(convert with int8 input and output).")  # fmt: skip
    if len(t.scales) != 1 or len(t.zero_points) != 1:
        raise BundleError(f"{where}: the {what} is not quantized per tensor.")


def _weights(t: Tensor, where: str, per_channel: bool, channels: int) -> np.ndarray:
    if t.type != INT8 or t.data is None:
        raise BundleError(f"{where}: the weights are not constant int8 (int4 or float weights are not "
                          "supported by the C engine).")  # fmt: skip
    if len(t.scales) not in (1, channels) or (len(t.scales) > 1 and (not per_channel or t.qdim != 0)):
        raise BundleError(f"{where}: weight quantization over {len(t.scales)} scales on axis {t.qdim} "
                          "is not supported by the C engine.")  # fmt: skip
    if np.any(t.zero_points != 0):
        raise BundleError(f"{where}: the weights have a nonzero zero point: the C engine needs symmetric weights.")
    return t.data.astype(np.int64)


def _bias(t: Tensor | None, n: int, where: str) -> np.ndarray | None:
    if t is None:
        return None
    if t.type != INT32 or t.data is None or t.data.size != n:
        raise BundleError(f"{where}: the bias is not a constant int32 vector of {n} values.")
    return t.data.astype(np.int64)


def _check_accumulator(w: np.ndarray, bias: np.ndarray | None, where: str) -> None:
    if _bound(w, bias).max(initial=0) >= 2**31:
        raise BundleError(f"{where}: the int32 accumulator could overflow; the C engine does not run this layer.")


def _bound(w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """The largest |accumulator| of each row: inputs less their zero point lie in [-255, 255]."""
    return np.abs(w).sum(axis=1) * 255 + (np.abs(bias) if bias is not None else 0)


def _check_rounding(w: np.ndarray, bias: np.ndarray | None, mults: np.ndarray, shifts: np.ndarray,
                    where: str) -> None:  # fmt: skip
    """The kernels double the accumulator (shifted left by a positive exponent) before the high
    multiply, and their rounding shift adds half: both must stay inside int32."""
    for bound, m, s in zip(_bound(w, bias), mults, shifts):
        bound, s = int(bound), int(s)
        high = ((bound << max(s, 0)) * int(m) >> 31) + 1
        if bound << (max(s, 0) + 1) >= 2**31 or (s < 0 and high + (1 << (-s - 1)) >= 2**31):
            raise BundleError(f"{where}: a requantization could overflow int32; the C engine does not run "
                              "this layer.")  # fmt: skip


def _per_channel_multipliers(inp: Tensor, w: Tensor, out: Tensor, n: int) -> tuple[list[int], list[int]]:
    """Conv and per-channel FC: double(input scale) * double(filter scale) / double(output scale)."""
    scales = w.scales if len(w.scales) > 1 else np.repeat(w.scales, n)
    pairs = [quantize_multiplier(f32(inp.scale) * f32(s) / f32(out.scale)) for s in scales]
    return [m for m, _ in pairs], [s for _, s in pairs]


def conv_step(em: Emitter, op: Any, t: list[Tensor], where: str) -> Step:
    opts = op.builtinOptions
    inp, w, out = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    bias_t = t[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    for x, what in ((inp, "input"), (out, "output")):
        _int8(x, what, where)
    if len(inp.shape) != 4 or inp.shape[0] != 1 or inp.shape[1] != 1 or len(w.shape) != 4 or w.shape[1] != 1:
        raise BundleError(f"{where}: only one-row convolutions (Conv1D, input [1, 1, W, C]) are supported "
                          f"by the C engine, not input {list(inp.shape)} and filter {list(w.shape)}.")  # fmt: skip
    cout, _, k, cin = w.shape
    in_w, in_c = inp.shape[2], inp.shape[3]
    if cin != in_c:
        raise BundleError(f"{where}: grouped convolutions are not supported by the C engine.")
    stride, dil = int(opts.strideW), int(opts.dilationWFactor)
    eff = (k - 1) * dil + 1
    if opts.padding == PADDING_SAME:
        out_w = -(-in_w // stride)
        pad = max((out_w - 1) * stride + eff - in_w, 0) // 2
    elif opts.padding == PADDING_VALID:
        out_w, pad = (in_w - eff + stride) // stride, 0
    else:
        raise BundleError(f"{where}: unknown padding {opts.padding}.")
    if tuple(out.shape) != (1, 1, out_w, cout):
        raise BundleError(f"{where}: output shape {list(out.shape)} is not [1, 1, {out_w}, {cout}].")
    weights = _weights(w, where, True, cout).reshape(cout, k * cin)
    bias = _bias(bias_t, cout, where)
    _check_accumulator(weights, bias, where)
    mults, shifts = _per_channel_multipliers(inp, w, out, cout)
    act = activation_range(int(opts.fusedActivationFunction), out, INT8_RANGE, where)
    rows = em.rows(weights, bias, mults, shifts, out.zero_point, act, where, group=2)
    body = f"{{{rows}, {in_w}, {in_c}, {out_w}, {k}, {stride}, {dil}, {pad}, {-inp.zero_point}}}"
    name = em.struct("hl_conv_t", "conv", body)
    borders = dil != 1 or pad > 0 or (out_w - 1) * stride + eff > in_w
    temps = [("xw", 16 * -(-(k * cin) // 4), "w")]  # two positions at a time
    window = "{window}" if borders else "0"
    if borders:
        temps.append(("window", k * cin, "b"))
    # writing output o (after window o is packed) must spare the input that windows o+1.. still read
    first = [max(0, (o + 1) * stride - pad) * in_c for o in range(out_w - 1)]
    in_place = min((first[o] - (o + 1) * cout for o in range(out_w - 1)), default=0)
    return Step("CONV_2D", inp.index, out.index, "", f"hl_conv(&{name}, {{src}}, {{dst}}, {{xw}}, {window});",
                temps, in_place, out_w * cout * k * cin)  # fmt: skip


def fc_step(em: Emitter, op: Any, t: list[Tensor], where: str) -> Step:
    opts = op.builtinOptions
    inp, w, out = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    bias_t = t[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    for x, what in ((inp, "input"), (out, "output")):
        _int8(x, what, where)
    if int(getattr(opts, "weightsFormat", 0)) != 0:
        raise BundleError(f"{where}: shuffled fully-connected weights are not supported by the C engine.")
    if len(w.shape) != 2:
        raise BundleError(f"{where}: weights of shape {list(w.shape)} are not [outputs, inputs].")
    n, d = w.shape
    if inp.size != d or out.size != n:
        raise BundleError(f"{where}: the C engine runs fully-connected layers on one vector (batch 1), "
                          f"not input {list(inp.shape)} -> output {list(out.shape)}.")  # fmt: skip
    weights = _weights(w, where, True, n).reshape(n, d)
    bias = _bias(bias_t, n, where)
    _check_accumulator(weights, bias, where)
    if len(w.scales) > 1:
        mults, shifts = _per_channel_multipliers(inp, w, out, n)
    else:  # per tensor: the product of the scales in float32
        m, s = quantize_multiplier(f32_product(inp.scale, w.scale) / f32(out.scale))
        mults, shifts = [m], [s]
    act = activation_range(int(opts.fusedActivationFunction), out, INT8_RANGE, where)
    rows = em.rows(weights, bias, mults, shifts, out.zero_point, act, where)
    name = em.struct("hl_fc_t", "fc", f"{{{rows}, {d}, {-inp.zero_point}}}")
    return Step("FULLY_CONNECTED", inp.index, out.index, "", f"hl_fc(&{name}, {{src}}, {{dst}}, {{xw}});",
                [("xw", 8 * -(-d // 4), "w")], 2**31, n * d)  # fmt: skip


def lstm_step(em: Emitter, op: Any, t: list[Tensor], where: str, table: str) -> Step:
    opts = op.builtinOptions
    idx = [int(i) for i in op.inputs]
    if len(idx) != 24:
        raise BundleError(f"{where}: expected 24 inputs, found {len(idx)}.")
    get = [t[i] if i >= 0 else None for i in idx]
    inp, out = get[0], t[op.outputs[0]]
    hidden, cell = get[18], get[19]
    if any(get[i] is None for i in (*range(1, 9), *range(12, 16))) or hidden is None or cell is None:
        raise BundleError(f"{where}: an LSTM without input gate (CIFG) or without gate biases is not "
                          "supported by the C engine.")  # fmt: skip
    if any(get[i] is not None for i in (9, 10, 11, 16, 17, 20, 21, 22, 23)):
        raise BundleError(f"{where}: peephole, projection and layer-norm LSTMs are not supported by the C engine.")
    for x, what in ((inp, "input"), (out, "output"), (hidden, "hidden state")):
        _int8(x, what, where)
    if cell.type != INT16 or np.any(cell.zero_points != 0) or len(cell.scales) != 1:
        raise BundleError(f"{where}: the cell state is not symmetric int16 per tensor.")
    if int(opts.fusedActivationFunction) != ACT_TANH:
        raise BundleError(f"{where}: cell activation {opts.fusedActivationFunction} is not supported "
                          "by the C engine (tanh is).")  # fmt: skip
    if len(inp.shape) != 3:
        raise BundleError(f"{where}: the input is not [batch, time, features].")
    batch, steps = (inp.shape[1], inp.shape[0]) if opts.timeMajor else (inp.shape[0], inp.shape[1])
    in_n, units = inp.shape[2], hidden.size
    if batch != 1:
        raise BundleError(f"{where}: the C engine runs batch 1, not {batch}.")
    if out.size != steps * units:
        raise BundleError(f"{where}: output shape {list(out.shape)} does not hold {steps} x {units} values.")
    log2 = math.log2(cell.scale)
    if abs(log2 - round(log2)) > 1e-3:
        raise BundleError(f"{where}: the cell state scale {cell.scale} is not a power of two.")
    # TFLite Micro's Tanh(cell_state_scale_power): input_left_shift 15 + power - 3, or multiplier 3
    # and that shift to the right when it is negative; the kernel's (c * mult + round) >> shift
    tanh_shift = 15 + int(round(log2)) - 3
    if tanh_shift < 0:
        tanh_mult, tanh_shift = 3, -tanh_shift
    elif tanh_shift > 13:
        raise BundleError(f"{where}: a cell state scale of {cell.scale} is out of the C engine's range.")
    else:
        tanh_mult, tanh_shift = 3 << tanh_shift, 0
    tanh_round = 1 << (tanh_shift - 1) if tanh_shift > 0 else 0
    clip = f32(opts.cellClip)
    quantized_clip = int(min(max(clip / cell.scale, -32768.0), 32767.0)) if clip > 0 else 0
    w_in, w_rec, biases, in_m, rec_m = [], [], [], [], []
    for gate in range(4):  # input, forget, cell, output
        wi, wr = get[1 + gate], get[5 + gate]
        w_in.append(_weights(wi, where, False, units).reshape(units, in_n))
        w_rec.append(_weights(wr, where, False, units).reshape(units, units))
        biases.append(_bias(get[12 + gate], units, where))
        # TFLite Micro's LSTM prepares its gate FCs without a bias: float32 product of the scales
        in_m.append(quantize_multiplier(f32_product(inp.scale, wi.scale) / GATE_Q))
        rec_m.append(quantize_multiplier(f32_product(hidden.scale, wr.scale) / GATE_Q))
    w_in_all, w_rec_all, bias_all = np.concatenate(w_in), np.concatenate(w_rec), np.concatenate(biases)
    _check_accumulator(w_in_all, bias_all, where)
    _check_accumulator(w_rec_all, None, where)
    in_rows = em.rows(w_in_all, bias_all, [m for m, _ in in_m], [s for _, s in in_m], 0, INT16_RANGE, where,
                      group=2)  # fmt: skip
    rec_rows = em.rows(w_rec_all, None, [m for m, _ in rec_m], [s for _, s in rec_m], 0, INT16_RANGE, where)
    forget = quantize_multiplier(GATE_OUT_Q * f32(cell.scale) / f32(cell.scale))
    input_ = quantize_multiplier(GATE_OUT_Q * GATE_OUT_Q / f32(cell.scale))
    output = quantize_multiplier(GATE_OUT_Q * GATE_OUT_Q / f32(hidden.scale))
    if max(forget[1], input_[1], output[1]) >= 0:
        raise BundleError(f"{where}: a cell or hidden state scale this small is not supported by the C engine.")
    body = (f"{{{in_rows}, {rec_rows}, {table}, {steps}, {in_n}, {units}, {-inp.zero_point}, "
            f"{-hidden.zero_point}, {hidden.zero_point}, {forget[0]}, {input_[0]}, {output[0]}, {forget[1]}, "
            f"{input_[1]}, {output[1]}, {quantized_clip}, {tanh_mult}, {tanh_round}, {tanh_shift}}}")  # fmt: skip
    name = em.struct("hl_lstm_t", "lstm", body)
    kin, krec = -(-in_n // 4), -(-units // 4)
    # the input part runs two steps at a time: two packed inputs, two sets of gates
    temps = [("xw", 16 * kin, "w"), ("hw", 8 * krec, "w"), ("cell", 2 * units, "h"), ("gates", 16 * units, "h")]
    # step s writes output s after packing input s: it must spare the input of steps s+1..
    in_place = min(((s + 1) * (in_n - units) for s in range(steps - 1)), default=0)
    return Step("UNIDIRECTIONAL_SEQUENCE_LSTM", inp.index, out.index, "",
                f"hl_lstm(&{name}, {{src}}, {{dst}}, {{xw}}, {{hw}}, {{cell}}, {{gates}});", temps, in_place,
                steps * 4 * units * (in_n + units))  # fmt: skip


def softmax_step(em: Emitter, op: Any, t: list[Tensor], where: str, consts: str) -> Step:
    inp, out = t[op.inputs[0]], t[op.outputs[0]]
    for x, what in ((inp, "input"), (out, "output")):
        _int8(x, what, where)
    if out.zero_point != -128 or f32(out.scale) != 1 / 256:
        raise BundleError(f"{where}: an int8 softmax must have output scale 1/256 and zero point -128.")
    n = inp.shape[-1] if inp.shape else 1
    if inp.size != n:
        raise BundleError(f"{where}: the C engine runs softmax over one vector, not {list(inp.shape)}.")
    beta = f32(op.builtinOptions.beta)
    real = min(beta * f32(inp.scale) * 2.0**26, 2.0**31 - 1.0)
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise BundleError(f"{where}: a softmax input scale of {inp.scale} is too small for TFLite's int8 softmax.")
    diff_min = -math.floor(31.0 * 2**26 / 2**shift)
    name = em.struct("hl_softmax_t", "softmax", f"{{{consts}, {n}, {mult}, {shift}, {diff_min}}}")
    return Step("SOFTMAX", inp.index, out.index, "", f"hl_softmax(&{name}, {{src}}, {{dst}});", [], None, 0)


def slice_view(op: Any, t: list[Tensor], where: str) -> tuple[int, int]:
    """(first element, count) of a STRIDED_SLICE that takes one contiguous run of its input."""
    opts = op.builtinOptions
    inp, out = t[op.inputs[0]], t[op.outputs[0]]
    begin, end, strides = (t[i].data for i in op.inputs[1:4])
    if begin is None or end is None or strides is None or inp.type != out.type:
        raise BundleError(f"{where}: only constant slices are supported by the C engine.")
    if opts.ellipsisMask or opts.newAxisMask:
        raise BundleError(f"{where}: ellipsis and new-axis slices are not supported by the C engine.")
    index = np.arange(inp.size).reshape(inp.shape)
    picks = []
    for axis, size in enumerate(inp.shape):  # TFLite's StridedSliceStartForAxis / EndForAxis
        stride = int(strides[axis])
        if stride == 0:
            raise BundleError(f"{where}: a slice stride of 0.")
        start = int(begin[axis]) + (size if begin[axis] < 0 else 0)
        start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
        if opts.beginMask & (1 << axis):
            start = 0 if stride > 0 else size - 1
        if opts.shrinkAxisMask & (1 << axis):
            stop = start if start >= size else start + 1
        else:
            stop = int(end[axis]) + (start if opts.offset else 0)
            stop += size if stop < 0 else 0
            stop = min(max(stop, 0), size) if stride > 0 else min(max(stop, -1), size - 1)
            if opts.endMask & (1 << axis):
                stop = size if stride > 0 else -1
        picks.append(list(range(start, stop, stride)))
    taken = index[np.ix_(*picks)].ravel() if all(picks) else np.zeros(0, int)
    if taken.size != out.size or taken.size == 0 or np.any(np.diff(taken) != 1):
        raise BundleError(f"{where}: a slice that is not one contiguous run of its input is not supported "
                          "by the C engine.")  # fmt: skip
    return int(taken[0]), int(taken.size)


# ---------------------------------------------------------------- planning and writing


@dataclass
class Engine:
    """The generated sources and their figures."""

    files: dict[str, str]
    scratch_bytes: int
    weight_bytes: int
    window: int
    channels: int
    classes: int
    macs: int
    ops: list[str]
    input_quant: tuple[float, int]
    output_quant: tuple[float, int]

    def figures(self) -> dict[str, Any]:
        return {"scratch_bytes": self.scratch_bytes, "weight_bytes": self.weight_bytes, "macs": self.macs,
                "ops": self.ops, "files": sorted(self.files)}  # fmt: skip


def generate(model: bytes, comment: str = "") -> Engine:
    """The engine's sources for an int8 .tflite model: ``{file name: text}`` and its figures.

    ``comment`` (a short description, e.g. the bundle's name) goes into the files' first comment only
    after it is reduced to plain printable ASCII."""
    tensors, ops, inputs, outputs, names = read_model(model)
    if len(inputs) != 1 or len(outputs) != 1:
        raise BundleError(f"the C engine runs models of one input and one output, not {len(inputs)} and "
                          f"{len(outputs)}.")  # fmt: skip
    inp, out = tensors[inputs[0]], tensors[outputs[0]]
    _int8(inp, "model input", "the model")
    _int8(out, "model output", "the model")
    if len(inp.shape) != 3 or inp.shape[0] != 1:
        raise BundleError(f"the model input {list(inp.shape)} is not [1, window, channels].")
    em = Emitter()
    table = consts = ""
    steps: list[Step] = []
    views: dict[int, tuple[int, int]] = {}  # tensor -> (tensor it is a view of, element offset)
    for i, op in enumerate(ops):
        kind = names.get(op.code, str(op.code))
        where = f"op {i} ({kind})"
        if kind in ("RESHAPE", "STRIDED_SLICE"):
            src, dst = tensors[op.inputs[0]], tensors[op.outputs[0]]
            offset, count = slice_view(op, tensors, where) if kind == "STRIDED_SLICE" else (0, src.size)
            if count != dst.size or src.type != dst.type:
                raise BundleError(f"{where}: input and output sizes differ.")
            base, base_offset = views.get(src.index, (src.index, 0))
            views[dst.index] = (base, base_offset + offset)
            continue
        if kind == "CONV_2D":
            step = conv_step(em, op, tensors, where)
        elif kind == "FULLY_CONNECTED":
            step = fc_step(em, op, tensors, where)
        elif kind == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            table = table or em.array("uint16_t", "sigmoid", sigmoid_table())
            step = lstm_step(em, op, tensors, where, table)
        elif kind == "SOFTMAX":
            consts = consts or em.array("int32_t", "softmax", softmax_constants())
            step = softmax_step(em, op, tensors, where, consts)
        else:
            raise BundleError(f"{where}: the C engine does not implement {kind}; it runs CONV_2D (one row), "
                              "FULLY_CONNECTED, UNIDIRECTIONAL_SEQUENCE_LSTM, SOFTMAX, RESHAPE and "
                              "STRIDED_SLICE.")  # fmt: skip
        steps.append(step)
    if not steps:
        raise BundleError("the model computes nothing the C engine could run.")
    plan = _plan(steps, tensors, views, inputs[0], outputs[0])
    return _write(em, steps, plan, tensors, inp, out, comment, names, ops)


@dataclass
class Plan:
    pointers: dict[int, str]  # tensor -> C expression of its bytes
    temps: list[dict[str, str]]  # per step: field -> C expression
    scratch_bytes: int
    copy_out: str | None  # a final copy into the output, when the output is a view


def _align(n: int) -> int:
    return -(-n // 4) * 4


def _plan(steps: list[Step], tensors: list[Tensor], views: dict[int, tuple[int, int]], graph_in: int,
          graph_out: int) -> Plan:  # fmt: skip
    """Place the activations of a chain of kernels in one buffer: [temporaries | activations].

    Each kernel's output goes after its input, before it, or over it as far as its access pattern allows
    (``Step.in_place``); the temporaries of a kernel live only during its call."""
    def base(tensor: int) -> tuple[int, int]:
        return views.get(tensor, (tensor, 0))

    produced = {s.target for s in steps}
    for k, step in enumerate(steps):
        src = base(step.source)[0]
        expected = graph_in if k == 0 else steps[k - 1].target
        if src != expected or src not in produced | {graph_in}:
            raise BundleError("the C engine runs sequential models (each layer reads the one before it); "
                              f"op {step.name} reads another tensor.")  # fmt: skip
    out_base, out_offset = base(graph_out)
    if out_base != steps[-1].target:
        raise BundleError("the model output is not computed by its last layer.")
    place: dict[int, int] = {}  # arena tensor -> start (relative, normalized later)
    lo = hi = 0
    for step in steps:
        size = _align(tensors[step.target].size)
        if step.target == graph_out:
            continue  # written straight into the caller's output
        src, src_offset = base(step.source)
        if src == graph_in:
            place[step.target] = 0
            lo, hi = min(lo, 0), max(hi, size)
            continue
        start, in_size = place[src], _align(tensors[src].size)
        reads_all = src_offset == 0 and tensors[step.source].size == tensors[src].size
        candidates = [start + in_size, start - size]
        if step.in_place is not None and (reads_all or step.in_place >= 2**31):
            delta = 0 if step.in_place >= 0 else -_align(-step.in_place)
            candidates.insert(0, start + delta)
        best = min(candidates, key=lambda c: max(hi, c + size) - min(lo, c))
        place[step.target] = best
        lo, hi = min(lo, best), max(hi, best + size)
    temp_bytes = max(sum(_align(b) for _, b, _ in s.temps) for s in steps)
    data = temp_bytes - lo

    def pointer(tensor: int) -> str:
        b, offset = base(tensor)
        if b == graph_in:
            return f"input + {offset}" if offset else "input"
        if b == graph_out or (b == steps[-1].target and b not in place):
            return f"output + {offset}" if offset else "output"
        return f"hl_scratch.b + {data + place[b] + offset}"

    pointers = {s.source: pointer(s.source) for s in steps}
    pointers.update({s.target: pointer(s.target) for s in steps})
    temps = []
    for s in steps:
        offset, fields = 0, {}
        for name, nbytes, member in s.temps:
            unit = {"b": 1, "h": 2, "w": 4}[member]
            fields[name] = f"hl_scratch.{member} + {offset // unit}"
            offset += _align(nbytes)
        temps.append(fields)
    copy_out = None
    if graph_out != steps[-1].target:  # the output is a view of the last kernel's output
        start = data + place[out_base] + out_offset
        copy_out = f"memcpy(output, hl_scratch.b + {start}, {tensors[graph_out].size});"
    return Plan(pointers, temps, max(4, temp_bytes + hi - lo), copy_out)


def _ascii(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in " ._-+:,()/")[:120]


def _write(em: Emitter, steps: list[Step], plan: Plan, tensors: list[Tensor], inp: Tensor, out: Tensor,
           comment: str, names: dict[int, str], ops: list[Any]) -> Engine:  # fmt: skip
    note = f" ({_ascii(comment)})" if comment else ""
    window, channels, classes = inp.shape[1], inp.shape[2], out.size
    macs = sum(s.macs for s in steps)
    header = f"""/* {MARKER}{note}: the C inference engine of an int8 model (do not edit; regenerate). */
#ifndef HARLITE_ENGINE_H
#define HARLITE_ENGINE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define HARLITE_ENGINE_WINDOW {window}
#define HARLITE_ENGINE_CHANNELS {channels}
#define HARLITE_ENGINE_CLASSES {classes}
#define HARLITE_ENGINE_SCRATCH_BYTES {plan.scratch_bytes}
#define HARLITE_ENGINE_MACS {macs}

/* Runs the model on one window, input [HARLITE_ENGINE_WINDOW][HARLITE_ENGINE_CHANNELS] int8 (quantized
 * as the model's input), output [HARLITE_ENGINE_CLASSES] int8 scores. Every call starts from a zero LSTM
 * state. Uses one static scratch buffer: not reentrant. Returns 0. */
int harlite_engine_invoke(const int8_t *input, int8_t *output);

#ifdef __cplusplus
}}
#endif

#endif /* HARLITE_ENGINE_H */
"""
    calls = []
    for step, fields in zip(steps, plan.temps):
        calls.append("    " + step.call.format(src=plan.pointers[step.source], dst=plan.pointers[step.target],
                                                 **fields))  # fmt: skip
    if plan.copy_out:
        calls.append("    " + plan.copy_out)
    words = plan.scratch_bytes // 4
    body = "".join(em.parts)
    model_c = f"""/* {MARKER}{note}: the model's weights, parameters and op sequence (do not edit; regenerate). */
#include "harlite_engine.h"

#include <string.h>

#include "harlite_engine_kernels.h"

{body}
/* The one scratch buffer: temporaries, then activations ({plan.scratch_bytes} bytes). */
static union {{
    uint32_t w[{words}];
    int16_t h[{2 * words}];
    int8_t b[{4 * words}];
}} hl_scratch;

int harlite_engine_invoke(const int8_t *input, int8_t *output) {{
{chr(10).join(calls)}
    return 0;
}}
"""
    files = {HEADER: header, MODEL_C: model_c, **kernel_sources()}
    return Engine(files, plan.scratch_bytes, em.weight_bytes, window, channels, classes, macs,
                  [names.get(op.code, str(op.code)) for op in ops], (inp.scale, inp.zero_point),
                  (out.scale, out.zero_point))  # fmt: skip

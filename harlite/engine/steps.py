"""One kernel call per operator: the checks that the kernels implement it, its parameters as a C struct
(multipliers, shifts, weights arranged for the kernels) and its call."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harlite.engine.fixed_point import (
    GATE_OUT_Q,
    GATE_Q,
    INT8_RANGE,
    INT16_RANGE,
    activation_range,
    f32,
    fc_multiplier,
    quantize_multiplier,
)
from harlite.engine.tflite_model import ACT_TANH, INT8, INT16, INT32, PADDING_SAME, PADDING_VALID, Tensor
from harlite.errors import BundleError


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
    """Conv and per-channel FC: one multiplier per output channel."""
    scales = w.scales if len(w.scales) > 1 else np.repeat(w.scales, n)
    pairs = [fc_multiplier(inp.scale, s, out.scale) for s in scales]
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
    else:  # per tensor
        m, s = fc_multiplier(inp.scale, w.scale, out.scale)
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
        # the wheel prepares the gate FCs like per-tensor FULLY_CONNECTED: the scales' product in double
        in_m.append(fc_multiplier(inp.scale, wi.scale, GATE_Q))
        rec_m.append(fc_multiplier(hidden.scale, wr.scale, GATE_Q))
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

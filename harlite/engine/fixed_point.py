"""TFLite's integer arithmetic as its kernels' Prepare computes it: requantization multipliers, activation
ranges, the LSTM's sigmoid table and softmax's fixed-point constants (in double, from float32 scales)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harlite.engine.tflite_model import ACT_NONE, ACT_RELU, ACT_RELU6, ACT_RELU_N1_TO_1, Tensor
from harlite.errors import BundleError

GATE_Q = 2.0**-12  # LSTM gate pre-activations are Q3.12
GATE_OUT_Q = 2.0**-15  # their sigmoid/tanh outputs Q0.15
INT16_RANGE = (-32768, 32767)
INT8_RANGE = (-128, 127)


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


def fc_multiplier(input_scale: float, weight_scale: float, output_scale: float) -> tuple[int, int]:
    """The requantization of a convolution or fully-connected row (also the LSTM's gate FCs): the float32
    scales multiplied and divided in double, as the wheel's Prepare does (per channel and per tensor)."""
    return quantize_multiplier(f32(input_scale) * f32(weight_scale) / f32(output_scale))


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

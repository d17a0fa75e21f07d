"""The streaming front end: raw samples in, model windows out.

Defined once, here, and mirrored in firmware/core: a causal gravity low-pass (Butterworth, second-order
sections, steady-state start), the channel set, a ring buffer that emits a window every hop, and the
per-channel standardization fused with int8 quantization. Batch processing of a whole recording runs
the same recurrence as the sample-by-sample stream, so training windows, the simulator and the board
see the same numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

# Bump when the front end's arithmetic changes (it is part of the digest that keys cached windows).
IMPLEMENTATION = 2  # 2: the gravity filter runs in float32, as on the board
# The defaults (UCI HAR's protocol): rate, window and hop in samples.
DEFAULT_RATE_HZ, DEFAULT_WINDOW, DEFAULT_HOP = 50.0, 128, 64
# Raw sensor channels: acceleration in g, angular rate in rad/s.
ACC: tuple[str, ...] = ("acc_x", "acc_y", "acc_z")
GYRO: tuple[str, ...] = ("gyro_x", "gyro_y", "gyro_z")
IMU6: tuple[str, ...] = ACC + GYRO
RAW_UNITS = {"acc": "g", "gyro": "rad/s"}
# Channel kinds, as in the generated C header.
CH_RAW, CH_BODY, CH_GRAVITY = 0, 1, 2
_KIND_PREFIX = {"": CH_RAW, "body_": CH_BODY, "gravity_": CH_GRAVITY, "total_": CH_RAW}

UCI_HAR_CHANNELS: tuple[str, ...] = (
    "body_acc_x", "body_acc_y", "body_acc_z",
    "gyro_x", "gyro_y", "gyro_z",
    "total_acc_x", "total_acc_y", "total_acc_z",
)  # fmt: skip
RAW6_CHANNELS: tuple[str, ...] = (
    "total_acc_x", "total_acc_y", "total_acc_z", "gyro_x", "gyro_y", "gyro_z",
)  # fmt: skip
# An accelerometer-only board: UCI HAR's channels without the gyroscope.
ACC_CHANNELS: tuple[str, ...] = (
    "body_acc_x", "body_acc_y", "body_acc_z", "total_acc_x", "total_acc_y", "total_acc_z",
)  # fmt: skip


def default_channels(raw_channels: tuple[str, ...]) -> tuple[str, ...]:
    """The front end's channels for a set of raw sensors: UCI HAR's nine, or six without a gyroscope."""
    return UCI_HAR_CHANNELS if set(GYRO) <= set(raw_channels) else ACC_CHANNELS


def channel_map(name: str, raw_channels: tuple[str, ...] = IMU6) -> tuple[int, int]:
    """(kind, raw index) of a channel name such as ``body_acc_x``, ``gyro_z`` or ``total_acc_y``."""
    for prefix, kind in sorted(_KIND_PREFIX.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(prefix):
            raw = name[len(prefix) :]
            if raw in raw_channels and (kind == CH_RAW or raw.startswith("acc")):
                return kind, raw_channels.index(raw)
            break
    sensors = "body_acc_*, gravity_acc_*, total_acc_*" + (", gyro_*" if GYRO[0] in raw_channels else "")
    raise ValueError(f"unknown channel {name!r} for raw sensors {', '.join(raw_channels)}: use {sensors}")


def channel_unit(name: str) -> str:
    """Physical unit of a front-end channel."""
    return RAW_UNITS["gyro" if "gyro" in name else "acc"]


@dataclass(frozen=True)
class FrontEndSpec:
    """What turns raw samples into model windows; stored in every manifest."""

    rate_hz: float = DEFAULT_RATE_HZ
    window: int = DEFAULT_WINDOW
    hop: int = DEFAULT_HOP
    channels: tuple[str, ...] = UCI_HAR_CHANNELS
    raw_channels: tuple[str, ...] = IMU6
    gravity_cutoff_hz: float = 0.3
    gravity_order: int = 3
    _maps: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "raw_channels", tuple(self.raw_channels))
        if self.raw_channels not in (ACC, IMU6):
            raise ValueError(f"raw channels must be {', '.join(ACC)} or {', '.join(IMU6)}, got {self.raw_channels}")
        object.__setattr__(self, "_maps", tuple(channel_map(c, self.raw_channels) for c in self.channels))
        if not 0 < self.hop <= self.window:
            raise ValueError(f"hop must be in 1..window, got {self.hop}")
        if not self.rate_hz > 0 or not 0 < self.gravity_cutoff_hz < self.rate_hz / 2:
            raise ValueError(f"rate {self.rate_hz} Hz and gravity cut-off {self.gravity_cutoff_hz} Hz: "
                             "the cut-off must lie between 0 and half the rate")  # fmt: skip

    @cached_property
    def sos(self) -> np.ndarray:
        """Gravity low-pass as float32 second-order sections (k, 6): b0 b1 b2 a0 a1 a2.

        The filter runs in float32, here as on the board, so Python and C give the same bits.
        """
        from scipy import signal

        sos = signal.butter(self.gravity_order, self.gravity_cutoff_hz, fs=self.rate_hz, output="sos")
        return sos.astype(np.float32)

    @cached_property
    def zi(self) -> np.ndarray:
        """(k, 2) float32 filter state that is steady for a constant unit input."""
        from scipy import signal

        return signal.sosfilt_zi(self.sos.astype(np.float64)).astype(np.float32)

    @property
    def kinds(self) -> np.ndarray:
        return np.array([k for k, _ in self._maps], dtype=np.int8)

    @property
    def sources(self) -> np.ndarray:
        return np.array([s for _, s in self._maps], dtype=np.int8)

    @property
    def filtered_raw(self) -> np.ndarray:
        """Raw channel indices the gravity filter must run on."""
        return np.array(sorted({s for k, s in self._maps if k != CH_RAW}), dtype=int)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        d["channels"] = list(self.channels)
        d["raw_channels"] = list(self.raw_channels)
        d["units"] = [channel_unit(c) for c in self.channels]
        d["gravity_sos"] = self.sos.tolist()
        d["gravity_zi"] = self.zi.tolist()
        d["digest"] = self.digest()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontEndSpec:
        names = ("rate_hz", "window", "hop", "channels", "raw_channels", "gravity_cutoff_hz", "gravity_order")
        spec = cls(**{k: (tuple(d[k]) if "channels" in k else d[k]) for k in names if k in d})
        if "gravity_sos" in d and not np.array_equal(np.asarray(d["gravity_sos"], np.float32), spec.sos):
            # The C header carries the recorded coefficients: Python must run the very same ones.
            raise ValueError("the recorded gravity filter differs from the one this scipy designs: rebuild the bundle")
        return spec

    def digest(self) -> str:
        """Short hash of everything that changes the front end's output."""
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        if d["raw_channels"] == IMU6:  # the digest of a six-sensor front end predates raw_channels
            del d["raw_channels"]
        d["implementation"] = IMPLEMENTATION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


class _GravityFilter:
    """Cascaded biquads (direct form II transposed), vectorised over channels, steady-state start."""

    def __init__(self, spec: FrontEndSpec) -> None:
        self.sos = spec.sos
        self.zi = spec.zi
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def run(self, x: np.ndarray) -> np.ndarray:
        """Filter (n, c) samples along axis 0, continuing from the current state."""
        x = np.asarray(x, dtype=np.float32)
        if self.state is None:
            # Steady state for the first sample: the state of each section scaled by its input.
            self.state = self.zi[:, None, :] * x[0][None, :, None]
        from scipy import signal

        y, self.state = signal.sosfilt(self.sos, x, axis=0, zi=self.state.transpose(0, 2, 1))
        self.state = self.state.transpose(0, 2, 1)
        return y


def _channels(raw: np.ndarray, gravity: np.ndarray, spec: FrontEndSpec) -> np.ndarray:
    """Assemble the (n, C) channels from raw samples and the gravity estimate of the filtered ones."""
    full_gravity = np.zeros_like(raw)
    full_gravity[:, spec.filtered_raw] = gravity
    out = np.empty((len(raw), len(spec.channels)), dtype=np.float32)
    for c, (kind, src) in enumerate(spec._maps):
        if kind == CH_RAW:
            out[:, c] = raw[:, src]
        elif kind == CH_BODY:
            out[:, c] = raw[:, src] - full_gravity[:, src]
        else:
            out[:, c] = full_gravity[:, src]
    return out


def features(samples: np.ndarray, spec: FrontEndSpec = FrontEndSpec()) -> np.ndarray:
    """Front-end channels (n, C) float32 of a whole recording's raw samples (n, raw channels), causally."""
    raw = np.asarray(samples, dtype=np.float32)
    gravity_filter = _GravityFilter(spec)
    gravity = gravity_filter.run(raw[:, spec.filtered_raw]) if len(raw) and len(spec.filtered_raw) else None
    return _channels(raw, gravity if gravity is not None else np.zeros((len(raw), 0)), spec)


def window_starts(n_samples: int, spec: FrontEndSpec = FrontEndSpec()) -> np.ndarray:
    """Start indices of the windows a stream of ``n_samples`` emits: 0, hop, 2*hop, ..."""
    if n_samples < spec.window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - spec.window + 1, spec.hop, dtype=np.int64)


def cut_windows(feats: np.ndarray, spec: FrontEndSpec = FrontEndSpec()) -> np.ndarray:
    """(m, window, C) windows of a feature sequence at the stream's window starts."""
    starts = window_starts(len(feats), spec)
    idx = starts[:, None] + np.arange(spec.window)[None, :]
    return feats[idx]


class StreamingFrontEnd:
    """Sample-by-sample front end, driven as the firmware's C core is: filter, ring buffer, hop.

    ``push`` takes one sample; ``push_block`` takes a block of consecutive samples (as an IMU FIFO
    delivers them) through the same state, so both give exactly the windows of ``features`` +
    ``cut_windows`` over the whole recording.
    """

    def __init__(self, spec: FrontEndSpec = FrontEndSpec()) -> None:
        self.spec = spec
        self._filter = _GravityFilter(spec)
        self.reset()

    def reset(self) -> None:
        """Forget all samples and the filter state."""
        self._filter.reset()
        self._count = 0
        self._tail = np.zeros((0, len(self.spec.channels)), dtype=np.float32)

    def push(self, raw_sample: np.ndarray) -> np.ndarray | None:
        """Add one raw sample (raw channels,); returns a (window, C) float32 window when one is complete."""
        windows = self.push_block(np.asarray(raw_sample).reshape(1, -1))
        return windows[0] if len(windows) else None

    def push_block(self, raw_samples: np.ndarray) -> np.ndarray:
        """Add consecutive raw samples (k, raw channels); returns the (m, window, C) windows they complete."""
        spec = self.spec
        raw = np.asarray(raw_samples, dtype=np.float32).reshape(-1, len(spec.raw_channels))
        gravity = self._filter.run(raw[:, spec.filtered_raw]) if len(raw) and len(spec.filtered_raw) else None
        feats = _channels(raw, gravity if gravity is not None else np.zeros((len(raw), 0)), spec)
        # ``buffer`` holds samples [first, count + k): the ring's content plus the new block.
        buffer = np.concatenate([self._tail, feats])
        first = self._count - len(self._tail)
        self._count += len(raw)
        ends = np.arange(max(first + spec.window - 1, self._count - len(raw)), self._count)
        starts = ends - spec.window + 1
        starts = starts[starts % spec.hop == 0] - first
        windows = buffer[starts[:, None] + np.arange(spec.window)[None, :]]
        self._tail = buffer[-(spec.window - 1) :] if spec.window > 1 else buffer[:0]
        return windows


def standardize(windows: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-channel standardization, the float models' input."""
    return ((np.asarray(windows, np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)


def quantize_params(mean: np.ndarray, std: np.ndarray, scale: float, zero_point: int) -> tuple[np.ndarray, np.ndarray]:
    """(mul, add) per channel so that q = floor(x * mul + add + 0.5) standardizes and quantizes."""
    mul = 1.0 / (np.asarray(std, np.float64) * scale)
    add = zero_point - np.asarray(mean, np.float64) * mul
    return mul.astype(np.float32), add.astype(np.float32)


def quantize(windows: np.ndarray, mean: np.ndarray, std: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 model input of physical windows (..., C), computed in float32 as the firmware does."""
    mul, add = quantize_params(mean, std, scale, zero_point)
    v = np.asarray(windows, np.float32) * mul + add + np.float32(0.5)
    return np.clip(np.floor(v), -128, 127).astype(np.int8)

"""The device's orientation: turning recordings and windows as if the device had been mounted otherwise.

A rotation is written ``x:90,y:20``: turns about the device's own axes in degrees (right hand), applied in
that order. For a phone at the waist in UCI HAR's axes, x is the body's vertical (gravity points along it
when the wearer stands), so ``x:180`` is the phone clipped facing the other way and ``y:20`` a tilt.

The front end is linear per axis (the gravity filter, its steady-state start ``zi * x[0]`` and body = raw -
gravity), so turning the raw samples by R turns every x/y/z channel triplet of the windows by R (up to
float32 rounding, 4e-5 g measured): a replay turns the raw samples (``rotate_samples``), training turns the
windows it already has (``rotate_windows``). ``mounting_rotations`` draws the training augmentation: a turn
about the vertical axis, uniform over the circle, then a tilt about a random horizontal axis.
"""

from __future__ import annotations

import numpy as np

AXES = "xyz"
TRIPLET_SUFFIXES = ("_x", "_y", "_z")


def axis_rotation(axis: int, degrees: float) -> np.ndarray:
    """3x3 rotation about device axis 0, 1 or 2 by ``degrees`` (right hand)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = (axis + 1) % 3, (axis + 2) % 3  # cyclic: x turns y to z, y turns z to x, z turns x to y
    r = np.eye(3)
    r[i, i], r[j, j], r[i, j], r[j, i] = c, c, -s, s
    return r


def rotation_matrix(text: str) -> np.ndarray:
    """The rotation ``text`` means (``x:90``, ``x:180,y:20``, ...); ValueError for anything else."""
    r = np.eye(3)
    hint = "write turns about the device's axes in degrees, applied in order, e.g. x:90 or x:180,y:20"
    for part in str(text).replace(" ", "").lower().split(","):
        axis, _, degrees = part.partition(":")
        try:
            if axis not in AXES or not np.isfinite(float(degrees)):
                raise ValueError
            r = axis_rotation(AXES.index(axis), float(degrees)) @ r
        except ValueError:
            raise ValueError(f"bad rotation {text!r}: {hint}") from None
    return r


def rotate_samples(samples: np.ndarray, raw_channels: tuple[str, ...], r: np.ndarray) -> np.ndarray:
    """Raw samples (n, raw channels) with the accelerometer (and gyroscope) turned by ``r``."""
    return rotate_channels(samples, tuple(raw_channels), r)


def rotate_channels(x: np.ndarray, channels: tuple[str, ...], r: np.ndarray) -> np.ndarray:
    """``x`` (..., channels) with every x/y/z triplet (acc, gyro, body_acc, total_acc, ...) turned by ``r``,
    one (3, 3) matrix or one per leading index (n, 3, 3) for windows (n, window, channels)."""
    out = np.array(x, dtype=np.float32, copy=True)
    r = np.asarray(r, np.float32)
    for prefix in sorted({c[:-2] for c in channels if c.endswith(TRIPLET_SUFFIXES)}):
        idx = [channels.index(prefix + s) for s in TRIPLET_SUFFIXES if prefix + s in channels]
        if len(idx) != 3:
            continue
        part = np.asarray(x, np.float32)[..., idx]
        out[..., idx] = part @ r.T if r.ndim == 2 else np.einsum("nij,ntj->nti", r, part)
    return out


def rotate_windows(windows: np.ndarray, channels: tuple[str, ...], r: np.ndarray) -> np.ndarray:
    """Windows (n, window, channels) with every channel triplet turned by ``r`` (n, 3, 3), one per window."""
    return rotate_channels(windows, tuple(channels), r)


def mounting_rotations(n: int, seed: int | np.random.Generator, tilt_degrees: float = 20.0,
                       vertical: int = 0) -> np.ndarray:  # fmt: skip
    """(n, 3, 3) float32: a turn uniform in [0, 360) degrees about axis ``vertical``, then a tilt uniform in
    [0, ``tilt_degrees``] about a horizontal axis of uniform direction. Pure: the same seed, the same draws."""
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(0.0, 2 * np.pi, n)
    direction = rng.uniform(0.0, 2 * np.pi, n)
    tilt = np.deg2rad(rng.uniform(0.0, tilt_degrees, n))
    i, j = [k for k in range(3) if k != vertical]
    horizontal = np.zeros((n, 3))
    horizontal[:, i], horizontal[:, j] = np.cos(direction), np.sin(direction)
    up = np.zeros((n, 3))
    up[:, vertical] = 1.0
    return (_axis_angle(horizontal, tilt) @ _axis_angle(up, yaw)).astype(np.float32)


def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations about unit axes (n, 3) by angles (n,) in radians (Rodrigues)."""
    k = np.zeros((len(angle), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k -= k.transpose(0, 2, 1)
    a = angle[:, None, None]
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k

"""The stream resampler: timestamped samples at any rate, regular or not, onto a model's grid.

The Python twin of the C resampler (harlite/board/c/harlite_resample.c), which harlite.js runs in the
browser; the tests prove both give the same bits. The first sample is t0 and grid point k lies at
t0 + k / rate (float64). A grid point is determined by the first sample at t >= its time - SNAP_S: within
SNAP_S of it that sample's values are taken as they are (a clock written with rounding stays exact),
otherwise the linear interpolation, in float64, between it and the sample before, rounded to float32. A
stream can so be resampled as it arrives. Intervals longer than GAP_PERIODS model periods restart the
grid in C; here they are refused (``read_csv`` refuses shorter gaps already).
"""

from __future__ import annotations

import numpy as np

# A sample this close (seconds) to a grid point counts as on it (HARLITE_RESAMPLE_SNAP_S).
SNAP_S = 1e-6
# An interval longer than this many model periods is a gap (HARLITE_RESAMPLE_GAP_PERIODS).
GAP_PERIODS = 10


def stream_resample(
    times: np.ndarray, samples: np.ndarray, rate: float, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``samples`` (n, channels) taken at increasing ``times`` (seconds) on the grid ``times[0] + k / rate``.

    Returns the float32 grid samples the stream determines and, when given, each one's label from the
    nearer of its two samples (the later one on a tie or a snap). ValueError when times do not increase
    or an interval exceeds GAP_PERIODS periods.
    """
    t = np.asarray(times, np.float64)
    values = np.asarray(samples, np.float32)
    if len(t) == 0:
        return values[:0], None if labels is None else np.asarray(labels)[:0]
    steps = np.diff(t)
    if (~(steps > 0)).any():
        raise ValueError(f"time does not increase after sample {int(np.flatnonzero(~(steps > 0))[0])}")
    if (steps > GAP_PERIODS / float(rate)).any():
        raise ValueError(f"an interval exceeds {GAP_PERIODS} periods of {float(rate):g} Hz")
    reach = t + SNAP_S  # a grid point up to here is determined by the sample (as the C compares)
    k = np.arange(int(np.floor((reach[-1] - t[0]) * rate)) + 2, dtype=np.float64)
    grid = t[0] + k / float(rate)
    grid = grid[grid <= reach[-1]]
    after = np.searchsorted(reach, grid, side="left")  # the first sample that determines each point
    before = np.maximum(after - 1, 0)
    t_before, t_after = t[before], t[after]
    p, c = values[before].astype(np.float64), values[after].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # point 0 sits on sample 0: snapped below
        w = (grid - t_before) / (t_after - t_before)
    out = (p + w[:, None] * (c - p)).astype(np.float32)
    snap = (t_after - grid <= SNAP_S) | (after == 0)
    out[snap] = values[after[snap]]
    if labels is None:
        return out, None
    nearest = np.where(~snap & (grid - t_before < t_after - grid), before, after)
    return out, np.asarray(labels)[nearest]

"""The stream resampler: timestamped samples at any rate, regular or not, onto a model's grid.

The Python twin of the C resampler (harlite_resample.c), which harlite.js runs in the browser; the tests
prove both give the same bits. The first sample is t0 and grid point k lies at t0 + k / rate (float64);
a grid point within SNAP_S of a sample takes that sample's values as they are (the later sample first),
any other the linear interpolation, in float64, between the samples before and after it, rounded to
float32. A sample comes after at most one further sample, so a stream can be resampled as it arrives.
Intervals longer than GAP_PERIODS model periods restart the grid in C; here they are refused
(``read_csv`` refuses shorter gaps already).
"""

from __future__ import annotations

import numpy as np

# A grid point this close (seconds) to a sample takes that sample's values (HARLITE_RESAMPLE_SNAP_S).
SNAP_S = 1e-6
# An interval longer than this many model periods is a gap (HARLITE_RESAMPLE_GAP_PERIODS).
GAP_PERIODS = 10


def stream_resample(
    times: np.ndarray, samples: np.ndarray, rate: float, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``samples`` (n, channels) taken at increasing ``times`` (seconds) on the grid ``times[0] + k / rate``.

    Returns the float32 grid samples up to the last sample's time and, when given, each grid sample's
    label from the nearer of its two samples (the later one on a tie, and the snapped one when snapped).
    ValueError when times do not increase or an interval exceeds GAP_PERIODS periods.
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
    k = np.arange(int(np.floor((t[-1] - t[0]) * rate)) + 2, dtype=np.float64)
    grid = t[0] + k / float(rate)
    grid = grid[grid <= t[-1]]
    after = np.searchsorted(t, grid, side="left")  # the first sample at or after each grid point
    before = np.maximum(after - 1, 0)
    t_before, t_after = t[before], t[after]
    p, c = values[before].astype(np.float64), values[after].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # point 0 sits on sample 0: snapped below
        w = (grid - t_before) / (t_after - t_before)
    out = (p + w[:, None] * (c - p)).astype(np.float32)
    snap_after = (t_after - grid <= SNAP_S) | (after == 0)
    snap_before = ~snap_after & (grid - t_before <= SNAP_S)
    out[snap_before] = values[before[snap_before]]
    out[snap_after] = values[after[snap_after]]
    if labels is None:
        return out, None
    nearest = np.where(snap_before | (~snap_after & (grid - t_before < t_after - grid)), before, after)
    return out, np.asarray(labels)[nearest]

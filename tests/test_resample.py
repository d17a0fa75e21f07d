"""The stream resampler: harlite/board/c/harlite_resample.c, compiled for the host, against harlite.core.resample.

Irregular streams (a phone's ~60 Hz with +-40 % jitter, slow and fast steady rates, timestamps near the
grid within the snap distance) give the same float32 grid samples, bit for bit; the C drops samples whose
time does not increase and restarts the grid after a gap.
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harlite.core.resample import GAP_PERIODS, SNAP_S, stream_resample

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "harlite" / "board" / "c"
CONFIG = ROOT / "models" / "cnn_lstm" / "tflm"  # HARLITE_NUM_RAW 6, HARLITE_RATE_HZ 50
RATE = 50.0

DRIVER = r"""
#include "harlite_resample.h"
/* Push n samples; write the grid samples into out (at most max rows), a status per sample. */
int resample_all(int n, const double *t, const float *raw, float *out, int max, int *status) {
    static harlite_resampler_t r;
    int i, made = 0;
    harlite_resampler_reset(&r);
    for (i = 0; i < n; i++) {
        status[i] = harlite_resampler_push(&r, t[i], raw + 6 * i);
        while (made < max && harlite_resampler_next(&r, out + 6 * made)) made++;
    }
    return made;
}
"""


@pytest.fixture(scope="module")
def c_resample(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("resample")
    (work / "driver.c").write_text(DRIVER)
    library = work / "resample.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", f"-I{CORE}", f"-I{CONFIG}",
                    str(work / "driver.c"), str(CORE / "harlite_resample.c"), "-o", str(library)], check=True)  # fmt: skip
    lib = ctypes.CDLL(str(library))

    def run(t: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.ascontiguousarray(t, np.float64)
        raw = np.ascontiguousarray(raw, np.float32)
        limit = int((t[-1] - t[0]) * RATE) + 20 * len(t)
        out = np.zeros((limit, 6), np.float32)
        status = np.zeros(len(t), np.int32)
        made = lib.resample_all(len(t), t.ctypes.data_as(ctypes.c_void_p), raw.ctypes.data_as(ctypes.c_void_p),
                                out.ctypes.data_as(ctypes.c_void_p), limit,
                                status.ctypes.data_as(ctypes.c_void_p))  # fmt: skip
        return out[:made], status

    return run


def _stream(rng: np.random.Generator, n: int, step: float, jitter: float, t0: float) -> tuple[np.ndarray, np.ndarray]:
    t = t0 + np.cumsum(np.r_[0.0, step * rng.uniform(1 - jitter, 1 + jitter, n - 1)])
    raw = rng.normal(0, 1, size=(n, 6)).astype(np.float32)
    return t, raw


@pytest.mark.parametrize(("step", "jitter", "t0"), [(1 / 60, 0.4, 1234.5), (1 / 100, 0.0, 0.0), (1 / 20, 0.3, 7.0),
                                                    (1 / 50, 0.0, 86400.25), (1 / 119, 0.05, 0.1)])  # fmt: skip
def test_c_and_python_give_the_same_grid_samples(c_resample, step: float, jitter: float, t0: float) -> None:
    t, raw = _stream(np.random.default_rng(int(step * 1e4)), 3000, step, jitter, t0)
    got, status = c_resample(t, raw)
    expected, _ = stream_resample(t, raw, RATE)
    assert (status == 0).all() and len(got) == len(expected) > 500
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))  # bit for bit


def test_samples_near_the_grid_are_taken_as_they_are(c_resample) -> None:
    rng = np.random.default_rng(1)
    k = np.arange(400)
    t = k / RATE + rng.uniform(-0.9, 0.9, len(k)) * SNAP_S  # a 50 Hz clock written with rounding
    t[0], t[-1] = 0.0, k[-1] / RATE  # the ends exactly on the grid: the last point is determined
    raw = rng.normal(0, 1, size=(len(k), 6)).astype(np.float32)
    got, _ = c_resample(t, raw)
    expected, labels = stream_resample(t, raw, RATE, k)
    assert np.array_equal(got, raw) and np.array_equal(expected, raw) and np.array_equal(labels, k)


def test_the_c_drops_time_going_back_and_restarts_after_a_gap(c_resample) -> None:
    t = np.array([0.0, 0.02, 0.02, 0.01, 0.04, 0.04 + GAP_PERIODS / RATE + 0.001, 0.4])
    raw = np.arange(len(t) * 6, dtype=np.float32).reshape(-1, 6)
    got, status = c_resample(t, raw)
    assert status.tolist() == [0, 0, -1, -1, 0, 1, 0]
    # 0, 0.02, 0.04 as they are; after the gap a new grid from 0.241 s: its first point, then up to 0.4 s
    assert np.array_equal(got[:3], raw[[0, 1, 4]]) and np.array_equal(got[3], raw[5])
    assert len(got) == 3 + 1 + int((0.4 - t[5]) * RATE)
    with pytest.raises(ValueError, match="exceeds 10 periods"):
        stream_resample(t[[0, 1, 4, 5]], raw[[0, 1, 4, 5]], RATE)

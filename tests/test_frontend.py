"""The front end: stream equals batch, causality, window placement and quantization."""

import numpy as np
import pytest

from harlite.core.frontend import (
    RAW6_CHANNELS,
    FrontEndSpec,
    StreamingFrontEnd,
    channel_map,
    cut_windows,
    features,
    quantize,
    window_starts,
)


def _walk(n: int, seed: int = 0) -> np.ndarray:
    """Raw samples that look like a phone in a pocket: gravity on x plus a 2 Hz gait and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 50.0
    x = rng.normal(0, 0.05, size=(n, 6)).astype(np.float32)
    x[:, 0] += 1.0 + 0.3 * np.sin(2 * np.pi * 2 * t)
    x[:, 4] += 0.8 * np.sin(2 * np.pi * 2 * t + 0.4)
    return x


@pytest.mark.parametrize("spec", [FrontEndSpec(), FrontEndSpec(channels=RAW6_CHANNELS), FrontEndSpec(hop=32)])
def test_stream_sample_by_sample_and_in_blocks_equals_batch(spec: FrontEndSpec) -> None:
    raw = _walk(700)
    batch = cut_windows(features(raw, spec), spec)
    stream = StreamingFrontEnd(spec)
    one_by_one = [w for s in raw if (w := stream.push(s)) is not None]
    stream.reset()
    rng = np.random.default_rng(1)
    blocks, i = [], 0
    while i < len(raw):
        k = int(rng.integers(1, 150))
        blocks.extend(stream.push_block(raw[i : i + k]))
        i += k
    assert len(batch) == len(one_by_one) == len(blocks) == len(window_starts(700, spec))
    np.testing.assert_array_equal(np.stack(one_by_one), batch)
    np.testing.assert_array_equal(np.stack(blocks), batch)


def test_changing_future_samples_never_changes_earlier_output() -> None:
    raw = _walk(600)
    changed = raw.copy()
    changed[400:] += np.random.default_rng(2).normal(0, 3, size=changed[400:].shape).astype(np.float32)
    a, b = features(raw), features(changed)
    np.testing.assert_array_equal(a[:400], b[:400])
    assert not np.allclose(a[400:], b[400:])


def test_gravity_separation_starts_steady_and_splits_body_from_total() -> None:
    spec = FrontEndSpec()
    raw = np.tile(np.array([0.1, -0.98, 0.2, 0.0, 0.0, 0.0], np.float32), (500, 1))
    f = features(raw, spec)
    # A phone lying still: no body acceleration from the first sample on, total = raw.
    assert np.abs(f[:, 0:3]).max() < 1e-4  # float32 steady state: far below one int8 step
    np.testing.assert_allclose(f[:, 6:9], raw[:, 0:3])
    # A step in acceleration shows in body acc first and then decays as gravity catches up.
    raw[250:, 0] += 0.5
    body_x = features(raw, spec)[:, 0]
    assert body_x[250] == pytest.approx(0.5, abs=1e-3) and abs(body_x[-1]) < 0.05


def test_windows_start_every_hop_once_full() -> None:
    spec = FrontEndSpec()
    assert window_starts(127, spec).size == 0
    np.testing.assert_array_equal(window_starts(128 + 64 * 3, spec), [0, 64, 128, 192])
    stream = StreamingFrontEnd(spec)
    emitted = [i for i, s in enumerate(_walk(400)) if stream.push(s) is not None]
    assert emitted == [127, 191, 255, 319, 383]


def test_quantize_standardizes_rounds_half_up_and_saturates() -> None:
    mean, std = np.array([1.0, 0.0]), np.array([0.5, 2.0])
    x = np.array([[1.0, 0.0], [1.5, 2.0], [100.0, -100.0], [1.0 + 0.5 * 0.125, 0.0]], np.float32)
    q = quantize(x, mean, std, scale=0.25, zero_point=-3)
    np.testing.assert_array_equal(q, [[-3, -3], [1, 1], [127, -128], [-3 + 1, -3]])  # 0.5 rounds up
    assert q.dtype == np.int8


def test_unknown_channel_is_refused() -> None:
    assert channel_map("body_acc_y") == (1, 1)
    assert channel_map("total_acc_z") == (0, 2)
    with pytest.raises(ValueError):
        channel_map("body_gyro_x")
    with pytest.raises(ValueError):
        FrontEndSpec(channels=("magnetometer_x",))


def test_spec_round_trips_through_its_dict() -> None:
    spec = FrontEndSpec(gravity_cutoff_hz=0.25, channels=RAW6_CHANNELS)
    again = FrontEndSpec.from_dict(spec.to_dict())
    assert again == spec and again.digest() == spec.digest() != FrontEndSpec().digest()

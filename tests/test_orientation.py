"""Turning the device: rotation specs, the front end's linearity, the training augmentation."""

import numpy as np
import pytest

from harlite.core.frontend import FrontEndSpec, cut_windows, features
from harlite.core.orientation import mounting_rotations, rotate_samples, rotate_windows, rotation_matrix


def test_rotation_specs_compose_in_order() -> None:
    r = rotation_matrix("x:90")
    assert np.allclose(r @ [0, 1, 0], [0, 0, 1])  # right hand about x: y goes to z
    assert np.allclose(rotation_matrix("x:90,y:90") @ [0, 1, 0], [1, 0, 0])  # then about y: z goes to x
    assert np.allclose(rotation_matrix("x:180") @ [1, 0.2, 0.3], [1, -0.2, -0.3])


@pytest.mark.parametrize("text", ["", "x", "w:90", "x:ninety", "x:90;y:3", "x:nan"])
def test_bad_rotations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="e.g. x:90"):
        rotation_matrix(text)


def test_turning_raw_samples_turns_every_channel_triplet_of_the_windows() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(3000) / 50.0
    raw = np.stack([1 + 0.3 * np.sin(2 * np.pi * 2 * t), 0.2 * np.cos(2 * np.pi * t), 0.1 + 0 * t,
                    np.sin(t), np.cos(3 * t), 0.1 * t / 60], axis=1).astype(np.float32)  # fmt: skip
    raw += rng.normal(0, 0.02, raw.shape).astype(np.float32)
    spec = FrontEndSpec()
    r = rotation_matrix("x:137,z:-20")
    turned = cut_windows(features(rotate_samples(raw, spec.raw_channels, r), spec), spec)
    windows = cut_windows(features(raw, spec), spec)
    expected = rotate_windows(windows, spec.channels, np.repeat(r[None], len(windows), axis=0))
    assert np.abs(turned - expected).max() < 1e-4  # float32 rounding only: the gravity filter is linear
    assert np.abs(turned - windows).max() > 0.5


def test_mounting_rotations_turn_about_the_vertical_and_tilt_at_most_so_much() -> None:
    r = mounting_rotations(2000, 7, tilt_degrees=20.0)
    assert np.array_equal(r, mounting_rotations(2000, 7, tilt_degrees=20.0))  # a pure function of the seed
    assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-5) and np.allclose(np.linalg.det(r), 1, atol=1e-5)
    up = r @ np.array([1.0, 0, 0])
    tilt = np.degrees(np.arccos(np.clip(up[:, 0], -1, 1)))
    assert tilt.max() <= 20.0 + 1e-3 and tilt.max() > 19
    yaw_only = mounting_rotations(500, 1, tilt_degrees=0.0)
    assert np.allclose(yaw_only @ np.array([1.0, 0, 0]), [1, 0, 0], atol=1e-6)
    heading = np.degrees(np.arctan2((yaw_only @ [0, 1.0, 0])[:, 2], (yaw_only @ [0, 1.0, 0])[:, 1])) % 360
    assert np.histogram(heading, bins=4, range=(0, 360))[0].min() > 90  # uniform over the circle

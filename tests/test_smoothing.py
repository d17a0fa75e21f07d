"""Prediction smoothing: the spec parser and the rules the C core shares."""

import numpy as np
import pytest

from harlite.core.smoothing import Smoother, SmoothingSpec, parse_smoothing, smooth


def _onehot(classes: list[int], n: int = 6) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[classes]


@pytest.mark.parametrize(
    "text, spec",
    [
        ("none", SmoothingSpec()),
        (" Majority:5 ", SmoothingSpec("majority", k=5)),
        ("majority:1", SmoothingSpec("majority", k=1)),
        ("ema:0.3", SmoothingSpec("ema", alpha=0.3)),
        ("ema:1", SmoothingSpec("ema", alpha=1.0)),
    ],
)
def test_parse_accepts_the_three_kinds_and_prints_back(text: str, spec: SmoothingSpec) -> None:
    assert parse_smoothing(text) == spec
    assert parse_smoothing(str(spec)) == spec


BAD = ["", "median:3", "majority", "majority:0", "majority:33", "majority:2.5", "ema:0", "ema:1.5", "ema:x", "none:3"]


@pytest.mark.parametrize("text", BAD)
def test_parse_rejects_bad_specs_with_the_fix(text: str) -> None:
    with pytest.raises(ValueError, match="use none, majority:K .* or ema:ALPHA"):
        parse_smoothing(text)


def test_none_is_the_argmax_with_ties_to_the_lowest_index() -> None:
    probs = np.array([[0.1, 0.5, 0.4, 0, 0, 0], [0.3, 0, 0.3, 0.3, 0, 0.1]], np.float32)
    assert smooth(probs, "none").tolist() == [1, 0]


def test_majority_counts_the_last_k_and_breaks_ties_by_recency() -> None:
    raw = [0, 0, 1, 1, 2, 1, 2, 2, 3, 3, 3]
    # k=3: windows [0] [0,0] [0,0,1] [0,1,1] [1,1,2] [1,2,1] [2,1,2] [1,2,2] [2,2,3] [2,3,3] [3,3,3]
    assert smooth(_onehot(raw), "majority:3").tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    # k=2: a tie of two different classes goes to the newer one, i.e. the raw prediction.
    assert smooth(_onehot(raw), "majority:2").tolist() == raw
    # k=4 at [0,0,1,1]: a 2-2 tie, and 1 was seen last.
    assert smooth(_onehot(raw), "majority:4")[3] == 1
    # A single outlier inside a steady activity is removed.
    assert smooth(_onehot([4, 4, 4, 0, 4, 4]), "majority:3").tolist() == [4] * 6


def test_ema_follows_the_recurrence_in_float32() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), size=40).astype(np.float32)
    alpha = np.float32(0.3)
    s = probs[0].copy()
    expected = [int(np.argmax(s))]
    for p in probs[1:]:
        s = alpha * p + (np.float32(1) - alpha) * s
        expected.append(int(np.argmax(s)))
    assert smooth(probs, "ema:0.3").tolist() == expected
    # alpha = 1 is no smoothing; a small alpha lags behind a change of activity.
    assert smooth(probs, "ema:1").tolist() == smooth(probs, "none").tolist()
    lagging = smooth(_onehot([1] * 5 + [2] * 5), "ema:0.2").tolist()
    assert lagging[:5] == [1] * 5 and lagging[5] == 1 and lagging[-1] == 2


def test_reset_starts_a_new_stream() -> None:
    smoother = Smoother("majority:5")
    for c in [2, 2, 2, 2]:
        smoother.update(_onehot([c])[0])
    smoother.reset()
    assert smoother.update(_onehot([5])[0]) == 5
    ema = Smoother("ema:0.1")
    ema.update(_onehot([3])[0])
    ema.reset()
    assert ema.update(_onehot([0])[0]) == 0


@pytest.mark.parametrize("text", ["ema:0.3 dwell:2 hysteresis:0.1", "majority:5 dwell:3", "none hysteresis:0.2"])
def test_dwell_and_hysteresis_parse_and_print_back(text: str) -> None:
    assert str(parse_smoothing(text)) == text
    spec = parse_smoothing(text)
    assert SmoothingSpec.from_manifest(spec.to_manifest()) == spec


@pytest.mark.parametrize(
    "text",
    [
        "ema:0.3 dwell:0",
        "none dwell:256",
        "ema:0.3 hysteresis:1",
        "majority:3 hysteresis:0.1",
        "none wait:2",
        "none dwell",
    ],
)
def test_bad_dwell_or_hysteresis_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="dwell:D"):
        parse_smoothing(text)


def test_dwell_waits_for_a_new_label_to_repeat() -> None:
    raw = [0, 0, 1, 0, 1, 1, 1, 2, 2]
    assert smooth(_onehot(raw), "none dwell:2").tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 2]
    assert smooth(_onehot(raw), "none dwell:3").tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]


def test_hysteresis_needs_a_margin_over_the_reported_label() -> None:
    probs = np.array([[0.9, 0.1, 0], [0.45, 0.55, 0], [0.2, 0.8, 0]], np.float32)
    assert smooth(probs, "none").tolist() == [0, 1, 1]
    assert smooth(probs, "none hysteresis:0.2").tolist() == [0, 0, 1]  # 0.55 < 0.45 + 0.2, 0.8 >= 0.2 + 0.2


def test_unknown_decisions_are_a_label_of_their_own() -> None:
    probs = _onehot([1, 1, 1, 1, 1, 1], 3)
    decisions = np.array([1, 3, 3, 1, 3, 1])  # 3 = unknown (three classes)
    assert smooth(probs, "none", decisions).tolist() == [1, 3, 3, 1, 3, 1]
    assert smooth(probs, "majority:3", decisions).tolist() == [1, 3, 3, 3, 3, 1]
    # ema: an unknown window counts as all of its weight on unknown
    assert smooth(probs, "ema:0.6", decisions).tolist() == [1, 3, 3, 1, 3, 1]
    assert smooth(probs, "ema:0.4", decisions).tolist() == [1, 1, 3, 1, 3, 1]  # 0.6, then 0.64 on unknown

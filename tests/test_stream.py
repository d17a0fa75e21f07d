"""Stream metrics (harlite.core.stream) on streams whose answers are worked out by hand."""

import numpy as np

from harlite.core.stream import OTHER, UNLABELLED, pooled, recording_counts, reference_labels

WINDOW, HOP, RATE, CLASSES = 4, 2, 1.0, 3


def windows(n_samples: int) -> np.ndarray:
    return np.arange(0, n_samples - WINDOW + 1, HOP)


def test_reference_is_the_majority_of_the_newest_hop() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    # windows start 0, 2, 4, 6; newest hops [2:4] [4:6] [6:8] [8:10]
    assert reference_labels(labels, windows(10), WINDOW, HOP).tolist() == [0, 1, 2, 2]  # [1, 2] ties: the newest


def test_a_perfect_stream() -> None:
    labels = np.array([0] * 8 + [1] * 8)  # 16 samples, windows at 0, 2, ..., 12
    reported = np.array([0, 0, 0, 1, 1, 1, 1])  # the window ending at sample 10 is the first with 1 in its newest hop
    m = pooled([recording_counts(labels, reported, windows(16), WINDOW, HOP, RATE, CLASSES)])
    assert m["switches_per_min"] == m["true_switches_per_min"] == 60 / 16  # one switch in 16 s
    assert m["changes"] == 1 and m["missed_changes"] == 0
    assert m["delay_median_s"] == 2.0  # the change at sample 8; the window [6, 10) ends at 10
    assert m["segment_f1"] == 1.0 and m["unknown_rate"] == 0.0


def test_flicker_late_reports_and_unknown() -> None:
    labels = np.array([0] * 8 + [1] * 8)
    reported = np.array([0, 2, 0, 0, 3, 1, 1])  # a flicker to class 2, then unknown before 1
    counts = recording_counts(labels, reported, windows(16), WINDOW, HOP, RATE, CLASSES)
    m = pooled([counts])
    assert counts["switches"] == 3  # 0 2 0 (unknown left out) 1
    assert m["delay_median_s"] == 6.0  # 1 is first reported by the window [10, 14)
    assert counts["segments"] == 4 and counts["matched"] == 1  # [0] [2] [0 0] [1 1]: only the 1s are long enough
    assert m["unknown_rate"] == 1 / 7 and m["unknown_rate_pure"] == 1 / 6  # all but [6, 10) are pure


def test_missed_change_other_and_unlabelled() -> None:
    labels = np.array([0] * 8 + [OTHER] * 4 + [1] * 8 + [UNLABELLED] * 4)
    reported = np.array([0] * 11)
    counts = recording_counts(labels, reported, windows(24), WINDOW, HOP, RATE, CLASSES)
    assert counts["missed"] == 1 and not counts["delays"]  # 1 is never reported
    assert counts["true_segments"] == 2  # the other and unlabelled runs are not activities
    # over the windows whose newest hop is an activity (0 or 1) the truth switches once, the report never
    assert counts["true_switches"] == 1 and counts["switches"] == 0

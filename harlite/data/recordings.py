"""A continuous sensor recording and the CSV recording format of DESIGN.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harlite.protocol import LABELS, RATE_HZ, UNLABELLED


@dataclass(frozen=True)
class Recording:
    """A continuous recording from one phone or board.

    ``samples`` is (n, 6) float32: acc x, y, z in g, then gyro x, y, z in rad/s, in the phone's
    axes as UCI HAR records them. ``labels`` is (n,) int8 class indices into ``protocol.LABELS``, or
    ``UNLABELLED`` (-1) for an unlabelled sample or a postural transition; ``None`` when the recording
    carries no labels at all. ``source`` names where it came from (a file path, ``hapt:exp01_user01``).
    """

    samples: np.ndarray
    rate: float = RATE_HZ
    labels: np.ndarray | None = None
    subject: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.shape[1] != 6:
            raise ValueError(f"samples must be (n, 6), got {self.samples.shape}")
        if self.labels is not None and self.labels.shape != (len(self.samples),):
            raise ValueError(f"labels must be ({len(self.samples)},), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    @property
    def label_names(self) -> list[str]:
        """Per-sample activity names, '' where unlabelled."""
        if self.labels is None:
            return [""] * len(self)
        return ["" if i == UNLABELLED else LABELS[i] for i in self.labels]

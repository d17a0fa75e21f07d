"""The UCI HAR protocol every stage shares: rate, window, hop, classes and the held-out subjects."""

RATE_HZ = 50.0
WINDOW = 128
HOP = 64
LABELS: tuple[str, ...] = (
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
)
UNLABELLED = -1
# Raw sensor channels of a recording: acceleration in g, angular rate in rad/s, phone axes.
RAW_CHANNELS: tuple[str, ...] = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
RAW_UNITS: tuple[str, ...] = ("g", "g", "g", "rad/s", "rad/s", "rad/s")
# UCI HAR's official test subjects.
TEST_SUBJECTS: tuple[int, ...] = (2, 4, 9, 10, 12, 13, 18, 20, 24)
ALL_SUBJECTS: tuple[int, ...] = tuple(range(1, 31))
TRAIN_SUBJECTS: tuple[int, ...] = tuple(s for s in ALL_SUBJECTS if s not in TEST_SUBJECTS)


def label_index(name: str) -> int:
    """Class index of an activity name (case-insensitive); raises KeyError for an unknown name."""
    return LABELS.index(name.strip().upper())

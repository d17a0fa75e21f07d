"""A continuous sensor recording and the CSV recording format (docs/data.md, "CSV recordings").

Reading streams the file in blocks (memory stays a small multiple of the samples kept), and checks that
the numbers are plausible for an IMU: time in seconds, a usable rate, acceleration in g and angular
rate in rad/s, no wild spikes, steady timing (jitter is regridded, gaps are errors).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from harlite.core.frontend import ACC, GYRO, IMU6
from harlite.core.protocol import UNLABELLED
from harlite.errors import DataError
from harlite.io.files import atomic_write_bytes, check_writable
from harlite.io.limits import bounded_lines, open_bounded

TIME = "time_s"
LABEL = "label"
CSV_HEADER = ",".join((TIME, *IMU6, LABEL))
# A rate within this fraction of the target is taken as the target (clock tolerance, no resampling).
RATE_TOLERANCE = 0.02
# An interval longer than this multiple of the median interval is a gap.
GAP_FACTOR = 1.5
# Intervals varying more than this (std / median) are regridded onto a uniform time base.
JITTER_LIMIT = 0.05
# Plausible sample rates (Hz); a recording below MIN_RATE_FACTOR x the target rate cannot feed the model.
MIN_RATE_HZ, MAX_RATE_HZ, MIN_RATE_FACTOR = 1.0, 5000.0, 1 / 6
# What an IMU can report: beyond these a value is a spike (clipped, with a warning).
ACC_RANGE_G, GYRO_RANGE_RAD_S = 16.0, 35.0
# Streaming and size limits: rows parsed per block, bytes a (decompressed) recording and one line may hold.
BLOCK_ROWS = 1 << 16
MAX_TEXT_BYTES = 1 << 30
MAX_GZIP_RATIO = 100
MAX_LINE_BYTES = 64 << 10
UNITS = {"acc": {"g": 1.0, "m/s^2": 1 / 9.80665}, "gyro": {"rad/s": 1.0, "deg/s": np.pi / 180}}


class RecordingError(DataError):
    """A recording that cannot be read; the message names the file (and line) and the fix."""


@dataclass(frozen=True)
class Units:
    """Units of a recording's columns (a dataset's ``dataset.json`` may say m/s^2 or deg/s)."""

    acc: str = "g"
    gyro: str = "rad/s"

    def __post_init__(self) -> None:
        for sensor in ("acc", "gyro"):
            if getattr(self, sensor) not in UNITS[sensor]:
                raise DataError(f"unknown {sensor} unit {getattr(self, sensor)!r}: use one of {', '.join(UNITS[sensor])}.")

    def scales(self, raw_channels: tuple[str, ...]) -> np.ndarray:
        """Per raw channel, the factor to g or rad/s."""
        return np.array([UNITS[c.split("_")[0]][getattr(self, c.split("_")[0])] for c in raw_channels], np.float64)


@dataclass(frozen=True)
class Recording:
    """A continuous recording from one phone or board.

    ``samples`` is (n, len(raw_channels)) float32: acc x, y, z in g, then (when recorded) gyro x, y, z
    in rad/s. ``labels`` is (n,) int16 indices into ``classes``, or ``UNLABELLED`` (-1); ``None`` when
    the recording carries no labels at all. ``subject`` names the group a split keeps together;
    ``source`` where it came from (a file path, ``hapt:exp01_user01``); ``warnings`` what reading fixed.
    """

    samples: np.ndarray
    rate: float
    labels: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    raw_channels: tuple[str, ...] = IMU6
    subject: str | None = None
    source: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.shape[1] != len(self.raw_channels):
            raise ValueError(f"samples must be (n, {len(self.raw_channels)}), got {self.samples.shape}")
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
        names = np.array(("", *self.classes), dtype=object)
        return names[self.labels.astype(np.int64) + 1].tolist()

    def resampled(self, rate: float) -> Recording:
        """This recording at ``rate`` (polyphase resampling; labels from the nearest sample)."""
        return resample(self, rate)

    def with_classes(self, classes: tuple[str, ...], merge: dict[str, str] | None = None,
                     ignore: tuple[str, ...] = ()) -> Recording:  # fmt: skip
        """Labels re-indexed into ``classes`` (after renaming by ``merge``); a name in ``ignore`` becomes
        unlabelled; any other name unknown to ``classes`` is an error naming it."""
        if self.labels is None:
            return replace(self, classes=tuple(classes))
        merge = merge or {}
        index = {name: i for i, name in enumerate(classes)}
        table = np.full(len(self.classes) + 1, UNLABELLED, dtype=np.int16)
        for i, name in enumerate(self.classes):
            name = merge.get(name, name)
            if name in index:
                table[i + 1] = index[name]
            elif name not in ignore:
                raise RecordingError(f"{self.source}: label {name!r} is not one of {', '.join(classes)}; add it to "
                                     "the dataset's labels, or 'merge' or 'ignore' it in dataset.json.")  # fmt: skip
        return replace(self, labels=table[self.labels.astype(np.int64) + 1], classes=tuple(classes))

    def with_raw_channels(self, raw_channels: tuple[str, ...]) -> Recording:
        """This recording reduced to ``raw_channels`` (an accelerometer-only model reads acc only)."""
        missing = [c for c in raw_channels if c not in self.raw_channels]
        if missing:
            raise RecordingError(f"{self.source} has no {', '.join(missing)} column: the model reads "
                                 f"{', '.join(raw_channels)}.")  # fmt: skip
        keep = [self.raw_channels.index(c) for c in raw_channels]
        return replace(self, samples=self.samples[:, keep], raw_channels=tuple(raw_channels))


def resample(recording: Recording, rate: float) -> Recording:
    """``recording`` at ``rate``, by ``scipy.signal.resample_poly`` with the rational ratio of the rates.

    A rate within 2 % of ``rate`` is only relabelled (a sensor clock's tolerance). Labels take the value
    of the nearest original sample.
    """
    if abs(recording.rate / rate - 1.0) <= RATE_TOLERANCE:
        return replace(recording, rate=rate)
    from scipy.signal import resample_poly

    ratio = Fraction(rate / recording.rate).limit_denominator(200)
    up, down = ratio.numerator, ratio.denominator
    samples = resample_poly(recording.samples.astype(np.float64), up, down, axis=0, padtype="line")
    labels = None
    if recording.labels is not None:
        nearest = np.rint(np.arange(len(samples)) * down / up).astype(np.int64)
        labels = recording.labels[np.minimum(nearest, len(recording) - 1)]
    return replace(recording, samples=samples.astype(np.float32), rate=rate, labels=labels)


def read_csv(
    path: str | Path,
    rate: float | None = None,
    units: Units = Units(),
) -> Recording:
    """Read a recording in the CSV format (``.csv`` or ``.csv.gz``), resampled to ``rate`` when given.

    The header names ``time_s,acc_x,acc_y,acc_z`` (required), ``gyro_x,gyro_y,gyro_z`` (optional, all
    three or none) and ``label`` (optional) in any order; other columns are ignored. The rate comes
    from the time column. Blank lines and ``#`` comment lines are skipped, so a serial capture of the
    firmware reads as it is. The file's label names, in order of appearance, are the classes
    (``Recording.with_classes`` maps them to a model's). ``units`` converts m/s^2 or deg/s. Any problem
    is a ``RecordingError`` naming the file and line.
    """
    path = Path(path)
    lines = _numbered_lines(path)
    header_line, header = next(lines, (0, ""))
    if not header:
        raise RecordingError(f"{path} is empty; a recording starts with the header {CSV_HEADER}.")
    columns = [c.strip().lower() for c in header.split(",")]
    raw_channels = _raw_columns(path, header_line, columns)
    numeric = [columns.index(c) for c in (TIME, *raw_channels)]
    label = columns.index(LABEL) if LABEL in columns else None
    times, values, names, numbers = [], [], [], []
    vocabulary: dict[str, int] = {}
    scales = units.scales(raw_channels)
    for block in _blocks(lines):
        data, block_names = _parse_block(path, block, columns, numeric, label)
        times.append(data[:, 0])
        with np.errstate(over="ignore"):  # beyond float32 is a spike: clipped with a warning below
            values.append((data[:, 1:] * scales).astype(np.float32))
        numbers.append(np.fromiter((n for n, _ in block), np.int32, len(block)))
        if block_names is not None:
            names.append(_intern(block_names, vocabulary))
    if not times:
        raise RecordingError(f"{path}: no samples after the header line.")
    time, samples, line_numbers = np.concatenate(times), np.concatenate(values), np.concatenate(numbers)
    found = tuple(vocabulary)
    labels = np.concatenate(names) if label is not None else None
    del times, values, numbers, names  # the blocks: only the joined arrays stay in memory
    warnings: list[str] = []
    source_rate, regrid = _steady_rate(path, line_numbers, time, rate)
    if regrid is not None:
        warnings.append(regrid)
        samples, labels = _regrid(time, samples, labels, source_rate)
    samples = _plausible(path, samples, raw_channels, units, warnings)
    rec = Recording(samples.astype(np.float32, copy=False), source_rate, labels, found, raw_channels, None, str(path), tuple(warnings))
    return resample(rec, rate) if rate is not None else rec


def header_channels(path: str | Path) -> tuple[str, ...]:
    """The raw sensors (acc, or acc and gyro) a recording's header names, reading only its first line."""
    path = Path(path)
    lines = _numbered_lines(path)
    try:
        number, header = next(lines, (0, ""))
    finally:
        lines.close()
    if not header:
        raise RecordingError(f"{path} is empty; a recording starts with the header {CSV_HEADER}.")
    return _raw_columns(path, number, [c.strip().lower() for c in header.split(",")])


def write_csv(recording: Recording, path: str | Path, force: bool = False) -> Path:
    """Write ``recording`` in the CSV format (gzip-compressed when ``path`` ends in ``.gz``), atomically.

    Values are written in their shortest exact form, so ``read_csv`` gives back the same float32 samples.
    """
    path = check_writable(path, force)
    n = len(recording)
    columns = [np.round(np.arange(n) / recording.rate, 6).astype(str).tolist()]
    columns += [c.astype(str).tolist() for c in recording.samples.astype(np.float32).T]
    header = [TIME, *recording.raw_channels]
    if recording.labels is not None:
        columns.append(recording.label_names)
        header.append(LABEL)
    text = ",".join(header) + "\n" + "".join(",".join(row) + "\n" for row in zip(*columns))
    data = text.encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return atomic_write_bytes(path, data)


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's content lines (gunzipped if ``.gz``) with their 1-based numbers, without blank and ``#``
    comment lines; streamed through ``harlite.io.limits`` (a regular file, at most MAX_TEXT_BYTES of text,
    MAX_GZIP_RATIO for gzip, lines of at most MAX_LINE_BYTES)."""
    with open_bounded(path, MAX_TEXT_BYTES, MAX_GZIP_RATIO, error=RecordingError) as stream:
        for number, raw in enumerate(bounded_lines(stream, MAX_LINE_BYTES, str(path), RecordingError), start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise RecordingError(f"{path}, line {number} is not UTF-8 text ({e.reason}); export it as a plain "
                                     "CSV.") from None  # fmt: skip
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                yield number, stripped


def _raw_columns(path: Path, line: int, columns: list[str]) -> tuple[str, ...]:
    """Which raw sensors the header names: acc, or acc and gyro."""
    missing = [c for c in (TIME, *ACC) if c not in columns]
    gyro = [c for c in GYRO if c in columns]
    if missing or 0 < len(gyro) < 3:
        absent = missing + [c for c in GYRO if c not in columns and gyro]
        raise RecordingError(f"{path}, line {line}: missing column {', '.join(absent)}; the header must be "
                             f"{CSV_HEADER} (gyroscope and label optional).")  # fmt: skip
    return IMU6 if gyro else ACC


def _blocks(lines: Iterator[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    block: list[tuple[int, str]] = []
    for item in lines:
        block.append(item)
        if len(block) == BLOCK_ROWS:
            yield block
            block = []
    if block:
        yield block


def _parse_block(
    path: Path, block: list[tuple[int, str]], columns: list[str], numeric: list[int], label: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows, numeric columns) float64 and the label strings of one block of lines."""
    rows = [line for _, line in block]
    try:
        data = np.loadtxt(rows, delimiter=",", usecols=numeric, dtype=np.float64, ndmin=2, comments=None)
        names = None
        if label is not None:
            names = np.loadtxt(rows, delimiter=",", usecols=[label], dtype=str, comments=None, ndmin=1)
    except ValueError as e:
        raise _diagnose(path, block, columns, numeric + ([label] if label is not None else []), e) from None
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if len(bad):
        raise RecordingError(f"{path}, line {block[bad[0]][0]}: a value is not a finite number.")
    return data, names


def _intern(names: np.ndarray, vocabulary: dict[str, int]) -> np.ndarray:
    """int16 indices of label strings into ``vocabulary`` (extended in order of appearance); '' is unlabelled."""
    unique, first, inverse = np.unique(np.char.strip(names), return_index=True, return_inverse=True)
    index = np.empty(len(unique), dtype=np.int16)
    for k in np.argsort(first):
        name = str(unique[k])
        if name:
            vocabulary.setdefault(name, len(vocabulary))
        index[k] = vocabulary[name] if name else UNLABELLED
    return index[inverse.reshape(-1)]


def _diagnose(
    path: Path, block: list[tuple[int, str]], columns: list[str], used: list[int], error: Exception
) -> RecordingError:
    """Find the first line ``np.loadtxt`` refused and say what is wrong with it."""
    for number, line in block:
        fields = line.split(",")
        if len(fields) <= max(used):
            return RecordingError(
                f"{path}, line {number}: {len(fields)} fields, the header names {len(columns)}; every row needs them all."
            )
        for i in used:
            if columns[i] == LABEL:
                continue
            try:
                float(fields[i])
            except ValueError:
                return RecordingError(
                    f"{path}, line {number}: {fields[i].strip()!r} in column {columns[i]} is not a number."
                )
    return RecordingError(f"{path}: {error}")


def _steady_rate(path: Path, lines: np.ndarray, t: np.ndarray, target: float | None) -> tuple[float, str | None]:
    """The sample rate of a rising time column, and a warning when its jitter needs regridding.

    Time going back, gaps, a time column in milliseconds and rates no model can use are errors.
    """
    if len(t) < 2:
        raise RecordingError(f"{path}: a single sample; a recording needs at least two to have a rate.")
    dt = np.diff(t)
    back = np.flatnonzero(dt <= 0)
    if len(back):
        i = int(back[0])
        raise RecordingError(
            f"{path}, line {lines[i + 1]}: time {t[i + 1]:g} s does not increase (previous {t[i]:g} s); "
            "sort the rows by time_s and drop duplicates."
        )
    step = float(np.median(dt))
    rate = float(f"{(len(t) - 1) / float(t[-1] - t[0]):.9g}")  # 100.00000000000001 Hz is 100 Hz
    if step >= 1.0 and MIN_RATE_HZ <= 1000.0 / step <= MAX_RATE_HZ:
        raise RecordingError(f"{path}: time_s rises by {step:g} per sample, which looks like milliseconds "
                             f"({1000 / step:.4g} Hz if so); write time_s in seconds (divide by 1000).")  # fmt: skip
    low = max(MIN_RATE_HZ, MIN_RATE_FACTOR * target) if target else MIN_RATE_HZ
    if not low <= rate <= MAX_RATE_HZ:
        need = f"the model samples at {target:g} Hz, so at least {low:.3g} Hz is needed" if target else \
            f"harlite reads {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz"  # fmt: skip
        raise RecordingError(f"{path}: the time column gives {rate:.4g} Hz ({step:.3g} s per sample); {need}. "
                             "Check that time_s is in seconds.")  # fmt: skip
    gaps = np.flatnonzero(dt > GAP_FACTOR * step)
    if len(gaps):
        i = int(gaps[0])
        raise RecordingError(
            f"{path}, line {lines[i + 1]}: a gap of {dt[i]:.3f} s after t = {t[i]:g} s "
            f"(the sampling interval is {step:.4f} s); split the recording at the gap."
        )
    jitter = float(np.std(dt) / step)
    note = None
    if jitter > JITTER_LIMIT:
        note = (f"{path}: sampling intervals vary by {jitter:.0%} (std/median); regridded to a steady "
                f"{rate:.4g} Hz by linear interpolation")  # fmt: skip
    return rate, note


def _regrid(t: np.ndarray, samples: np.ndarray, labels: np.ndarray | None, rate: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples (and nearest labels) on the uniform time base t0 + k / rate."""
    grid = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * rate)) + 1) / rate
    regridded = np.stack([np.interp(grid, t, samples[:, c]) for c in range(samples.shape[1])], axis=1)
    if labels is not None:
        nearest = np.clip(np.searchsorted(t, grid), 1, len(t) - 1)
        nearest -= (grid - t[nearest - 1]) < (t[nearest] - grid)
        labels = labels[nearest]
    return regridded, labels


def _plausible(path: Path, samples: np.ndarray, raw_channels: tuple[str, ...], units: Units,
               warnings: list[str]) -> np.ndarray:  # fmt: skip
    """Refuse units that cannot be right; clip isolated spikes beyond an IMU's range (with a warning)."""
    acc = samples[:, :3]
    with np.errstate(over="ignore"):  # a spike's square may overflow float32; the median does not care
        magnitude = float(np.median(np.linalg.norm(acc, axis=1)))
    if 4.0 < magnitude < 20.0:
        raise RecordingError(f"{path}: acceleration's median magnitude is {magnitude:.3g}, which looks like "
                             f"m/s^2, not {units.acc}; give acc in g (divide by 9.80665) or set "
                             '"units": {"acc": "m/s^2"} in the dataset\'s dataset.json.')  # fmt: skip
    limits = np.array([ACC_RANGE_G if c.startswith("acc") else GYRO_RANGE_RAD_S for c in raw_channels])
    beyond = np.abs(samples) > limits
    if len(raw_channels) > 3 and beyond[:, 3:].mean() > 0.01:
        raise RecordingError(f"{path}: {beyond[:, 3:].mean():.1%} of the angular rates exceed "
                             f"{GYRO_RANGE_RAD_S:g} rad/s, which looks like deg/s; give gyro in rad/s or set "
                             '"units": {"gyro": "deg/s"} in the dataset\'s dataset.json.')  # fmt: skip
    if beyond.any():
        warnings.append(f"{path}: {int(beyond.any(axis=1).sum())} sample(s) beyond what an IMU reports "
                        f"(|acc| > {ACC_RANGE_G:g} g or |gyro| > {GYRO_RANGE_RAD_S:g} rad/s), clipped")  # fmt: skip
        samples = np.clip(samples, -limits, limits)
    return samples

"""A continuous sensor recording and the CSV recording format (docs/data.md, "CSV recordings").

Reading streams the file in blocks (memory stays a small multiple of the samples kept), and checks that
the numbers are plausible for an IMU: time in seconds, a usable rate, acceleration in g and angular
rate in rad/s, no wild spikes, steady timing (jitter is regridded, gaps are errors).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from harlite.core.frontend import IMU6
from harlite.core.protocol import UNLABELLED
from harlite.core.resample import stream_resample
from harlite.data.columns import Columns
from harlite.data.layout import TIME_UNITS, Layout, Units
from harlite.errors import DataError
from harlite.io.files import atomic_write_bytes, check_writable

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
# Acceleration whose slow part is below this (in g) holds no gravity; a stretch (samples) to average it over.
GRAVITY_FREE_G, GRAVITY_STRETCH_S = 0.3, 2.0
# With ``fill_holes`` (importers), an interval up to this multiple of the median is a hole filled by the regrid.
HOLE_FACTOR = 5.0
TIME_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


class RecordingError(DataError):
    """A recording that cannot be read; the message names the file (and line) and the fix."""


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
    gravity: str = "included"  # or "removed": linear acceleration (dataset.json's "gravity")

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
    layout: Layout = Layout(),
) -> Recording:
    """Read a recording (``.csv`` or ``.csv.gz``; a folder of per-sensor files when ``layout.sensors``
    says so), brought to ``rate`` when given.

    By default the header names ``time_s,acc_x,acc_y,acc_z`` (required), ``gyro_x,gyro_y,gyro_z``
    (optional, all three or none) and ``label`` (optional) in any order; other columns are ignored;
    ``layout`` maps other people's columns, clocks and text (docs/data.md). The rate comes from the time
    column. Blank lines and ``#`` comment lines are skipped, so a serial capture of the firmware reads as
    it is. The file's label names, in order of appearance, are the classes (``Recording.with_classes``
    maps them to a model's). ``units`` converts m/s^2 or deg/s. Any problem is a ``RecordingError``
    naming the file and line.

    With ``rate`` (a model's), the samples are put on the grid t0 + k / rate straight from the time column
    by ``harlite.core.resample.stream_resample``: what the board's C resampler does to a stream as it arrives,
    so that ``harlite simulate`` and a phone's browser (harlite.js) give the same bits. A file already on
    that grid keeps its samples as they are. Without ``rate``, the file keeps its own rate (jitter
    regridded at it).
    """
    from harlite.data.columns import join_sensors, read_columns

    try:
        columns = join_sensors(path, layout, units) if layout.sensors else read_columns(path, layout, units)
    except RecordingError:
        raise
    except DataError as e:
        raise RecordingError(str(e)) from None
    return recording(columns, rate, units, layout)


def recording(columns: Columns, rate: float | None = None, units: Units = Units(), layout: Layout = Layout(),
              fill_holes: bool = False) -> Recording:  # fmt: skip
    """The checked recording of ``columns``: a steady rate (jitter regridded; with ``fill_holes``, short
    holes too), plausible units and gravity, spikes clipped; on the grid of ``rate`` when given."""
    path, time = columns.path, columns.time
    warnings = list(columns.notes)
    source_rate, regrid = _steady_rate(path, columns.lines, time, rate, layout.time_unit, fill_holes)
    labels = columns.labels
    if rate is None and regrid is not None:
        warnings.append(regrid)
    # checked and spikes clipped before any interpolation, which would smear a spike (or make NaN of inf)
    samples = _plausible(path, columns.values, source_rate, columns.raw_channels, units, layout, warnings)
    if rate is not None:  # straight onto the model's grid, as a phone's stream is (harlite.core.resample)
        samples, labels = stream_resample(time, samples, float(rate), labels)
        source_rate = float(rate)
    elif regrid is not None:
        samples, labels = _regrid(time, samples, labels, source_rate)
    return Recording(samples.astype(np.float32, copy=False), source_rate, labels, columns.classes,
                     columns.raw_channels, None, str(path), tuple(warnings), layout.gravity)  # fmt: skip


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


def _steady_rate(path: Path, lines: np.ndarray, t: np.ndarray, target: float | None, unit: str = "s",
                 fill_holes: bool = False) -> tuple[float, str | None]:  # fmt: skip
    """The sample rate of a rising time column (seconds), and a warning when its jitter (or, with
    ``fill_holes``, a short hole) needs regridding.

    Time going back, gaps, a clock in another unit than declared and rates no model can use are errors.
    """
    if len(t) < 2:
        raise RecordingError(f"{path}: a single sample; a recording needs at least two to have a rate.")
    dt = np.diff(t)
    back = np.flatnonzero(dt <= 0)
    if len(back):
        i = int(back[0])
        what = "repeats" if dt[i] == 0 else "goes back"
        raise RecordingError(
            f"{path}, line {lines[i + 1]}: time {what} ({t[i + 1]:.6g} s after {t[i]:.6g} s): the file holds "
            "more than one recording or its rows are out of order; split it there, or let 'harlite data import' "
            "split it at every clock jump."
        )
    step = float(np.median(dt))
    rate = float(f"{(len(t) - 1) / float(t[-1] - t[0]):.9g}")  # 100.00000000000001 Hz is 100 Hz
    low = max(MIN_RATE_HZ, MIN_RATE_FACTOR * target) if target else MIN_RATE_HZ
    if not low <= rate <= MAX_RATE_HZ:
        raise RecordingError(_rate_problem(path, rate, step, unit, target, low))
    gaps = np.flatnonzero(dt > (HOLE_FACTOR if fill_holes else GAP_FACTOR) * step)
    if len(gaps):
        i = int(gaps[0])
        raise RecordingError(
            f"{path}, line {lines[i + 1]}: a gap of {dt[i]:.3f} s after t = {t[i]:g} s "
            f"(the sampling interval is {step:.4f} s); split the recording at the gap."
        )
    jitter = float(np.std(dt) / step)
    holes = int((dt > GAP_FACTOR * step).sum())
    note = None
    if jitter > JITTER_LIMIT or holes:
        why = f"sampling intervals vary by {jitter:.0%} (std/median)" + (f", {holes} short hole(s)" if holes else "")
        note = f"{path}: {why}; regridded to a steady {rate:.4g} Hz by linear interpolation"
    return rate, note


def _rate_problem(path: Path, rate: float, step: float, unit: str, target: float | None, low: float) -> str:
    """Why a time column gives an unusable rate, naming the clock unit it looks like."""
    declared = TIME_UNITS[unit]
    for name, scale in TIME_UNITS.items():
        guess = rate * declared / scale  # the rate if the column were in ``name``
        if name != unit and low <= guess <= MAX_RATE_HZ and guess <= 1000.0:
            return (f"{path}: the time column rises by {step / declared:.4g} per sample, which looks like "
                    f"{TIME_WORDS[name]} ({guess:.4g} Hz if so), not {TIME_WORDS[unit]}; write time_s in seconds, "
                    f'or set "time_unit": "{name}" in the dataset\'s dataset.json (simulate: --time-unit {name}).')  # fmt: skip
    need = f"the model samples at {target:g} Hz, so at least {low:.3g} Hz is needed" if target else \
        f"harlite reads {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz"  # fmt: skip
    return (
        f"{path}: the time column gives {rate:.4g} Hz ({step:.3g} s per sample); {need}. Check that the time "
        f"column is in {TIME_WORDS[unit]}."
    )


def _regrid(
    t: np.ndarray, samples: np.ndarray, labels: np.ndarray | None, rate: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples (and nearest labels) on the uniform time base t0 + k / rate."""
    grid = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * rate)) + 1) / rate
    regridded = np.stack([np.interp(grid, t, samples[:, c]) for c in range(samples.shape[1])], axis=1)
    if labels is not None:
        nearest = np.clip(np.searchsorted(t, grid), 1, len(t) - 1)
        nearest -= (grid - t[nearest - 1]) < (t[nearest] - grid)
        labels = labels[nearest]
    return regridded, labels


def _plausible(path: Path, samples: np.ndarray, rate: float, raw_channels: tuple[str, ...], units: Units, layout: Layout,
               warnings: list[str]) -> np.ndarray:  # fmt: skip
    """Refuse units that cannot be right and acceleration without gravity that does not say so; clip
    isolated spikes beyond an IMU's range (with a warning)."""
    gravity = gravity_magnitude(samples[:, :3], rate)
    if layout.gravity == "included" and 4.0 < gravity < 20.0:
        raise RecordingError(f"{path}: gravity in the acceleration measures {gravity:.3g} {units.acc}, which looks "
                             f"like m/s^2, not {units.acc}; give acc in g (divide by 9.80665) or set "
                             '"units": {"acc": "m/s^2"} in the dataset\'s dataset.json (simulate: --units acc=m/s^2).')  # fmt: skip
    if layout.gravity == "included" and gravity < GRAVITY_FREE_G:
        raise RecordingError(f"{path}: the acceleration holds no gravity (its slow part measures {gravity:.2g} g, not 1 g): "
                             "it looks like linear acceleration (phyphox 'Linear Acceleration', Sensor Logger's "
                             "Accelerometer.csv). Record acceleration with gravity (phyphox 'Acceleration with g', "
                             'Sensor Logger TotalAcceleration.csv or Accelerometer + Gravity), or say "gravity": '
                             '"removed" in dataset.json (data import: --gravity removed).')  # fmt: skip
    if layout.gravity == "removed" and gravity > 0.5:
        raise RecordingError(f"{path}: dataset.json says gravity is removed, but the acceleration holds {gravity:.2g} g "
                             'of it; remove "gravity": "removed" or give linear acceleration.')  # fmt: skip
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


def gravity_magnitude(acc: np.ndarray, rate: float) -> float:
    """The median magnitude of the acceleration's slow part (means over GRAVITY_STRETCH_S-long stretches, or
    the whole recording when shorter), in the recording's units: 1 g wherever gravity is in it, ~0 when
    it was removed, whatever the motion."""
    acc = np.asarray(acc, np.float64)
    n = len(acc)
    if not n:
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        clipped = np.clip(acc, -1e6, 1e6)  # a spike must not carry its stretch
        size = max(1, min(n, int(GRAVITY_STRETCH_S * rate)))
        stretches = (
            clipped[: n - n % size].reshape(-1, size, 3).mean(axis=1) if n >= size else clipped.mean(axis=0)[None]
        )
        return float(np.median(np.linalg.norm(stretches, axis=1)))

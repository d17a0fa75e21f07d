"""A continuous sensor recording and the CSV recording format of DESIGN.md."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from harlite.errors import DataError
from harlite.manifest import atomic_write_bytes, check_writable
from harlite.protocol import LABELS, RATE_HZ, RAW_CHANNELS, UNLABELLED

CSV_COLUMNS: tuple[str, ...] = ("time_s", *RAW_CHANNELS, "label")
CSV_HEADER = ",".join(CSV_COLUMNS)
# A rate within this fraction of the target is taken as the target (clock tolerance, no resampling).
RATE_TOLERANCE = 0.02
# An interval longer than this multiple of the median interval is a gap.
GAP_FACTOR = 1.5


class RecordingError(DataError):
    """A recording that cannot be read; the message names the file (and line) and the fix."""


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

    def resampled(self, rate: float = RATE_HZ) -> Recording:
        """This recording at ``rate`` (polyphase resampling; labels from the nearest sample)."""
        return resample(self, rate)


def cache_dir() -> Path:
    """harlite's cache folder (parsed data sets, downloads): ``$HARLITE_CACHE`` or the user cache dir."""
    env = os.environ.get("HARLITE_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("harlite"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_arrays(prefix: str, identity: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``build()``'s arrays, kept as ``<cache>/<prefix>-<key>.npz`` where the key hashes ``identity``.

    ``identity`` must change whenever the result would (a source file's size and mtime, a parser version).
    """
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    path = cache_dir() / f"{prefix}-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return {name: z[name] for name in z.files}
    arrays = build()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return arrays


def resample(recording: Recording, rate: float = RATE_HZ) -> Recording:
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


def read_csv(path: str | Path, rate: float = RATE_HZ) -> Recording:
    """Read a recording in the CSV format (``.csv`` or ``.csv.gz``), resampled to ``rate``.

    The header names the columns ``time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z[,label]`` in any
    order; the sample rate comes from the time column, which must rise steadily. Blank lines and
    ``#`` comment lines are skipped, so a serial capture of the firmware reads as it is. Any problem
    is a ``RecordingError`` naming the file and line.
    """
    path = Path(path)
    lines = _read_lines(path)
    header_line, header = lines[0]
    columns = [c.strip().lower() for c in header.split(",")]
    missing = [c for c in CSV_COLUMNS[:-1] if c not in columns]
    if missing:
        raise RecordingError(f"{path}, line {header_line}: missing column {', '.join(missing)}; "
                             f"the header must be {CSV_HEADER} (label optional).")  # fmt: skip
    rows = [line for _, line in lines[1:]]
    if not rows:
        raise RecordingError(f"{path}: no samples after the header line.")
    numeric = [columns.index(c) for c in CSV_COLUMNS[:-1]]
    label = [columns.index("label")] if "label" in columns else []
    try:
        data = np.loadtxt(rows, delimiter=",", usecols=numeric, dtype=np.float64, ndmin=2, comments=None)
        names = np.loadtxt(rows, delimiter=",", usecols=label, dtype=str, comments=None, ndmin=1) if label else None
    except ValueError as e:
        raise _diagnose(path, lines, columns, numeric + label, e) from None
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if len(bad):
        raise RecordingError(f"{path}, line {_line_of(lines, bad[0])}: a value is not a finite number.")
    labels = None if names is None else _label_indices(path, lines, names)
    source_rate = _steady_rate(path, lines, data[:, 0])
    recording = Recording(data[:, 1:].astype(np.float32), source_rate, labels, None, str(path))
    return resample(recording, rate)


def write_csv(recording: Recording, path: str | Path, force: bool = False) -> Path:
    """Write ``recording`` in the CSV format (gzip-compressed when ``path`` ends in ``.gz``), atomically.

    Values are written in their shortest exact form, so ``read_csv`` gives back the same float32 samples.
    """
    path = check_writable(path, force)
    n = len(recording)
    columns = [np.round(np.arange(n) / recording.rate, 6).astype(str).tolist()]
    columns += [c.astype(str).tolist() for c in recording.samples.astype(np.float32).T]
    header = CSV_COLUMNS[:-1]
    if recording.labels is not None:
        names = np.array(("", *LABELS))[recording.labels.astype(np.int64) + 1]
        columns.append(names.tolist())
        header = CSV_COLUMNS
    text = ",".join(header) + "\n" + "".join(",".join(row) + "\n" for row in zip(*columns))
    data = text.encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return atomic_write_bytes(path, data)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """The file's content lines (gunzipped if ``.gz``) with their 1-based numbers: no blank or ``#``
    comment lines; never empty."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise RecordingError(f"{path} {what}; pass a .csv or .csv.gz recording.")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RecordingError(f"{path} cannot be read: {e.strerror}.") from None
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise RecordingError(
                f"{path} is not valid gzip ({e}); compress it with gzip or drop the .gz suffix."
            ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RecordingError(f"{path} is not UTF-8 text (byte {e.start}); export it as a plain CSV.") from None
    numbered = enumerate(text.splitlines(), start=1)
    lines = [(n, line) for n, line in numbered if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise RecordingError(f"{path} is empty; a recording starts with the header {CSV_HEADER}.")
    return lines


def _line_of(lines: list[tuple[int, str]], row: int) -> int:
    """1-based file line of data row ``row``."""
    return lines[row + 1][0]


def _diagnose(
    path: Path, lines: list[tuple[int, str]], columns: list[str], used: list[int], error: Exception
) -> RecordingError:
    """Find the first line ``np.loadtxt`` refused and say what is wrong with it."""
    for number, line in lines[1:]:
        fields = line.split(",")
        if len(fields) <= max(used):
            return RecordingError(
                f"{path}, line {number}: {len(fields)} fields, the header names {len(columns)}; every row needs them all."
            )
        for i in used:
            if columns[i] == "label":
                continue
            try:
                float(fields[i])
            except ValueError:
                return RecordingError(
                    f"{path}, line {number}: {fields[i].strip()!r} in column {columns[i]} is not a number."
                )
    return RecordingError(f"{path}: {error}")


def _label_indices(path: Path, lines: list[tuple[int, str]], names: np.ndarray) -> np.ndarray:
    """int8 class index per row from activity names (case-insensitive); '' is unlabelled."""
    unique, inverse = np.unique(np.char.upper(np.char.strip(names)), return_inverse=True)
    index = np.empty(len(unique), dtype=np.int8)
    for k, name in enumerate(unique.tolist()):
        if name == "":
            index[k] = UNLABELLED
        elif name in LABELS:
            index[k] = LABELS.index(name)
        else:
            row = int(np.flatnonzero(inverse == k)[0])
            raise RecordingError(
                f"{path}, line {_line_of(lines, row)}: unknown label {names[row].strip()!r}; "
                f"use one of {', '.join(LABELS)} or leave it empty."
            )
    return index[inverse.reshape(-1)]


def _steady_rate(path: Path, lines: list[tuple[int, str]], t: np.ndarray) -> float:
    """Sample rate of a steadily rising time column; gaps and time going back are errors."""
    if len(t) < 2:
        raise RecordingError(f"{path}: a single sample; a recording needs at least two to have a rate.")
    dt = np.diff(t)
    back = np.flatnonzero(dt <= 0)
    if len(back):
        i = int(back[0])
        raise RecordingError(
            f"{path}, line {_line_of(lines, i + 1)}: time {t[i + 1]:g} s does not increase (previous {t[i]:g} s); "
            "sort the rows by time_s and drop duplicates."
        )
    step = float(np.median(dt))
    gaps = np.flatnonzero(dt > GAP_FACTOR * step)
    if len(gaps):
        i = int(gaps[0])
        raise RecordingError(
            f"{path}, line {_line_of(lines, i + 1)}: a gap of {dt[i]:.3f} s after t = {t[i]:g} s "
            f"(the sampling interval is {step:.4f} s); split the recording at the gap."
        )
    return (len(t) - 1) / float(t[-1] - t[0])


def describe_source(source: str = "hapt", path: str | Path | None = None) -> dict[str, Any]:
    """Subjects, hours of signal and labelled windows per class for train/test of a data source.

    Hours are exact for ``hapt`` (continuous recordings) and approximate for ``uci-har`` (its windows
    overlap by half, so each adds one hop of new signal).
    """
    from harlite.protocol import HOP, TEST_SUBJECTS
    from harlite.windows import load_windows

    windows = load_windows(source, path)
    if source == "hapt":
        from harlite.data.hapt import load_hapt

        recordings = load_hapt()
        hours = sum(r.duration_s for r in recordings) / 3600
        extra = {"recordings": len(recordings), "samples": sum(len(r) for r in recordings)}
    else:
        hours = len(windows) * HOP / RATE_HZ / 3600
        extra = {}
    test = np.isin(windows.subject, TEST_SUBJECTS)
    splits = {"train": windows.take(~test), "test": windows.take(test)}
    return {
        "source": source,
        "path": None if path is None else str(path),
        "subjects": sorted(set(windows.subject.tolist())),
        "test_subjects": list(TEST_SUBJECTS),
        "hours": round(hours, 3),
        **extra,
        "windows": {name: {**w.class_counts(), "total": len(w)} for name, w in splits.items()},
    }

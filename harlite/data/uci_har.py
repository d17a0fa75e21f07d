"""The official UCI HAR dataset (Anguita et al. 2013): pre-cut 128-sample windows, from its zip or folder.

Its windows were filtered offline (noise filters and a non-causal gravity separation) before they were
cut, so it is a training and evaluation source, not a stream to replay; ``hapt`` holds the same
subjects' continuous recordings.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from harlite.core.frontend import DEFAULT_WINDOW as WINDOW
from harlite.core.protocol import UCI_LABELS, UCI_TEST_SUBJECTS
from harlite.data.recordings import RecordingError
from harlite.errors import DataError, HarliteError
from harlite.io.cache import cache_dir, cached_arrays
from harlite.io.files import atomic_write_bytes, write_json
from harlite.io.hashing import sha256_file
from harlite.io.limits import MiB, open_bounded, read_bounded, zip_member

UCI_HAR_URL = "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip"
INNER_ZIP = "UCI HAR Dataset.zip"
FOLDER = "UCI HAR Dataset"
CACHED_ZIP = "uci-har.zip"
SPLITS = ("train", "test")
PARSER_VERSION = 1
# Caps (the real archive is 58 MB; its largest file harlite reads, total_acc_x_train.txt, 15 MB of text
# that deflates about 3:1). A zip or a download beyond them is refused, not unpacked.
MAX_ARCHIVE_BYTES = 256 * MiB  # the archive itself, and a zip nested in it
MAX_MEMBER_BYTES = 64 * MiB  # one dataset file, decompressed
MAX_RATIO = 100  # decompressed / compressed, per member
MAX_NESTED_ZIPS = 4  # zips inside the archive tried for the dataset
# File stems in the channel order of the returned windows (UCI's body_gyro is the raw angular rate).
SIGNALS: tuple[str, ...] = tuple(f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz")

Reader = Callable[[str], BinaryIO]  # member path relative to the dataset root -> a capped stream (close it)


def default_path() -> Path:
    """Where ``fetch_uci_har`` stores the dataset by default."""
    return cache_dir() / CACHED_ZIP


def load_uci_har_windows(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UCI HAR's windows, train then test: X (n, 128, 9) float32, y (n,) class 0-5, subject (n,).

    Channels: body_acc_x,y,z (g), gyro_x,y,z (rad/s, UCI's body_gyro), total_acc_x,y,z (g). ``path``
    is ``UCI HAR Dataset.zip``, the UCI archive zip around it, the extracted folder (or its parent);
    ``None`` means the copy ``harlite data fetch uci-har`` stored. Parsed arrays are cached.
    """
    if path is None and not default_path().exists():
        raise DataError("UCI HAR is not downloaded: run 'harlite data fetch uci-har' (or pass --from PATH to a copy).")
    found = locate(default_path() if path is None else path)
    arrays = cached_arrays("uci-har", _identity(found), lambda: _parse(found))
    return arrays["X"], arrays["y"], arrays["subject"]


def locate(path: str | Path) -> Path:
    """The dataset folder or zip that ``path`` names: itself, its 'UCI HAR Dataset' folder or a known zip in it."""
    path = Path(path)
    if path.is_dir():
        for root in (path, path / FOLDER):
            if (root / "train" / "y_train.txt").is_file():
                return root
        for name in (CACHED_ZIP, INNER_ZIP, UCI_HAR_URL.rsplit("/", 1)[1]):
            if (path / name).is_file():
                return path / name
        raise DataError(f"{path} holds no UCI HAR dataset: point --from to '{FOLDER}' or its zip.")
    if not path.is_file():
        raise DataError(f"{path} does not exist: point --from to '{FOLDER}' or its zip.")
    return path


def open_dataset(path: str | Path) -> Reader:
    """A reader of the dataset's files (``train/y_train.txt``...) in a folder, a zip or a zip in a zip."""
    path = locate(path)
    if path.is_dir():
        return lambda member: _open_file(path / member)
    try:
        return _zip_reader(zipfile.ZipFile(path), str(path))
    except zipfile.BadZipFile:
        raise DataError(f"{path} is not a zip file: point --from to '{FOLDER}' or its zip.") from None


def members() -> list[str]:
    """Every dataset file the loader reads, relative to the dataset root."""
    return [
        name
        for split in SPLITS
        for name in (f"{split}/y_{split}.txt", f"{split}/subject_{split}.txt")
        + tuple(f"{split}/Inertial Signals/{s}_{split}.txt" for s in SIGNALS)
    ]


def _identity(path: Path) -> str:
    """Path, size and mtime of the zip, or of each dataset file in the folder: changes when the data may."""
    files = [path / m for m in members()] if path.is_dir() else [path]
    stats = [(f.stat().st_size, f.stat().st_mtime_ns) if f.is_file() else None for f in files]
    return f"{path.resolve()}|{stats}|v{PARSER_VERSION}"


def _parse(path: Path) -> dict[str, np.ndarray]:
    read = open_dataset(path)
    print(f"harlite: reading UCI HAR from {path} (cached afterwards)...", file=sys.stderr)
    parts = [_read_split(read, split, str(path)) for split in SPLITS]
    return {key: np.concatenate(arrays) for key, arrays in zip(("X", "y", "subject"), zip(*parts))}


def _zip_reader(archive: zipfile.ZipFile, name: str, nested: bool = True) -> Reader:
    """Reader into a zip holding the dataset, directly or as the nested ``UCI HAR Dataset.zip`` (one level
    deep; a nested zip is spooled to a temporary file, within the caps, never held in memory)."""
    names = [m for m in archive.namelist() if not m.startswith("__MACOSX/")]
    for member in names:
        if member.endswith("train/y_train.txt"):
            prefix = member[: -len("train/y_train.txt")]
            return lambda m: _open_member(archive, prefix + m, name)
    zips = sorted((m for m in names if m.endswith(".zip")), key=lambda m: not m.endswith(INNER_ZIP))
    for member in zips[:MAX_NESTED_ZIPS] if nested else []:
        spool = tempfile.TemporaryFile()
        with zip_member(archive, archive.getinfo(member), MAX_ARCHIVE_BYTES, MAX_RATIO, name) as source:
            shutil.copyfileobj(source, spool, MiB)
        try:
            return _zip_reader(zipfile.ZipFile(spool), f"{name}/{member}", nested=False)
        except (zipfile.BadZipFile, HarliteError):
            spool.close()
            continue
    raise DataError(f"{name} does not contain the UCI HAR dataset (no train/y_train.txt).")


def _open_file(path: Path) -> BinaryIO:
    """One dataset file of the folder as a capped stream; FileNotFoundError when it is missing."""
    if not path.exists():
        raise FileNotFoundError(path)
    return open_bounded(path, MAX_MEMBER_BYTES)


def _open_member(archive: zipfile.ZipFile, member: str, name: str) -> BinaryIO:
    """One dataset file of the zip as a capped stream; KeyError when the zip lacks it."""
    return zip_member(archive, archive.getinfo(member), MAX_MEMBER_BYTES, MAX_RATIO, name)


def _read_split(read: Reader, split: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, subject) of one split."""
    y = _numbers(read, f"{split}/y_{split}.txt", name).astype(np.int64) - 1
    subject = _numbers(read, f"{split}/subject_{split}.txt", name).astype(np.int64)
    if len(subject) != len(y) or not np.isin(y, range(6)).all():
        raise RecordingError(
            f"{name}: {split}/y_{split}.txt and subject_{split}.txt disagree or hold labels outside 1-6."
        )
    X = np.empty((len(y), WINDOW, len(SIGNALS)), dtype=np.float32)
    for c, signal in enumerate(SIGNALS):
        member = f"{split}/Inertial Signals/{signal}_{split}.txt"
        values = _numbers(read, member, name)
        if values.size != len(y) * WINDOW:
            raise RecordingError(f"{name}: {member} holds {values.size} values, expected {len(y)} windows of {WINDOW}.")
        X[:, :, c] = values.reshape(len(y), WINDOW)
    return X, y, subject


def _numbers(read: Reader, member: str, name: str) -> np.ndarray:
    """All whitespace-separated numbers of one dataset file, as float64."""
    try:
        with read(member) as stream:
            return np.loadtxt(io.TextIOWrapper(stream, encoding="latin-1"), dtype=np.float64, ndmin=1).ravel()
    except (KeyError, FileNotFoundError):
        raise RecordingError(f"{name} lacks {member}: download the complete dataset again.") from None
    except ValueError as e:
        raise RecordingError(f"{name}: {member} holds a value that is not a number ({e}).") from None


def fetch_uci_har(
    dest: str | Path | None = None,
    force: bool = False,
    source: str | Path | None = None,
    url: str = UCI_HAR_URL,
    timeout: float = 10.0,
) -> Path:
    """Download UCI HAR (or copy it from ``source``, a zip) to ``dest``; check it; record size and sha256.

    ``dest`` defaults to the cache (where ``load_uci_har_windows(None)`` looks). A valid copy already
    there is kept unless ``force``. The record ``<dest>.json`` holds the origin, bytes and sha256.
    """
    dest = Path(dest) if dest is not None else default_path()
    if dest.exists() and not force:
        _check(open_dataset(dest), str(dest))
        print(f"{dest} is already there (pass --force to fetch it again).", file=sys.stderr)
        return dest
    if source is not None:
        source = Path(source)
        if not source.is_file():
            raise DataError(
                f"{source} is not a file: fetch stores the UCI zip; pass a folder to --from of the command that reads it."
            )
        data, origin = read_bounded(source, MAX_ARCHIVE_BYTES, compressed=False), str(source.resolve())
    else:
        data, origin = _download(url, timeout), url
    try:
        _check(_zip_reader(zipfile.ZipFile(io.BytesIO(data)), origin), origin)
    except zipfile.BadZipFile:
        raise DataError(f"{origin} is not a zip file; the UCI HAR archive is a zip.") from None
    atomic_write_bytes(dest, data)
    record = {"origin": origin, "bytes": len(data), "sha256": sha256_file(dest)}
    write_json(dest.with_suffix(".json"), {**record, "fetched": datetime.now(UTC).isoformat(timespec="seconds")})
    print(f"stored {dest} ({len(data) / 1e6:.1f} MB, sha256 {record['sha256'][:16]}...)", file=sys.stderr)
    return dest


def _check(read: Reader, name: str) -> None:
    """Every file the loader needs is there and reads back intact (CRC) within the caps, streamed."""
    for member in members():
        try:
            with read(member) as stream:
                while stream.read(MiB):
                    pass
        except (KeyError, FileNotFoundError):
            raise RecordingError(f"{name} lacks {member}: fetch the complete archive again (--force).") from None


def _download(url: str, timeout: float) -> bytes:
    """The bytes at ``url``, with a progress bar on stderr; offline fails within ``timeout`` seconds."""
    request = urllib.request.Request(url, headers={"User-Agent": "harlite"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)  # 0: unknown
            if total > MAX_ARCHIVE_BYTES:
                raise DataError(f"{url} is {total / 1e6:.0f} MB, more than the {MAX_ARCHIVE_BYTES // MiB} MiB "
                                "the UCI HAR archive can be: not the dataset.")  # fmt: skip
            chunks = []
            done = 0
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                done += len(chunk)
                if done > MAX_ARCHIVE_BYTES:
                    raise DataError(f"{url} sent more than {MAX_ARCHIVE_BYTES // MiB} MiB, more than the UCI "
                                    "HAR archive can be: not the dataset.")  # fmt: skip
                share = f" of {total / 1e6:.1f} MB ({done / total:.0%})" if total else " MB"
                print(f"\rDownloading UCI HAR: {done / 1e6:.1f}{share}", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            return b"".join(chunks)
    except (urllib.error.URLError, OSError) as e:
        reason = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
        raise DataError(
            f"Cannot download {url} ({reason}). Download it on a machine with internet access and store it "
            "with 'harlite data fetch uci-har --from PATH', or pass --from PATH to the command that reads it."
        ) from None


def describe_uci_har(path: str | Path | None = None) -> dict[str, Any]:
    """``harlite data info --source uci-har``: subjects, about how many hours (its windows overlap by half,
    so each adds one hop of new signal) and windows per class of UCI HAR's own train/test split."""
    X, y, subject = load_uci_har_windows(path)
    test = np.isin(subject.astype(str), UCI_TEST_SUBJECTS)
    counts = {part: {**{name: int((y[mask] == i).sum()) for i, name in enumerate(UCI_LABELS)}, "total": int(mask.sum())}
              for part, mask in (("train", ~test), ("test", test))}  # fmt: skip
    return {
        "source": "uci-har",
        "path": None if path is None else str(path),
        "subjects": sorted({str(s) for s in subject.tolist()}, key=int),
        "hours": round(len(y) * (WINDOW // 2) / 50.0 / 3600, 3),
        "sensors": ["body_acc", "gyro", "total_acc"],
        "labels": list(UCI_LABELS),
        "groups": {"test": list(UCI_TEST_SUBJECTS)},
        "windows": counts,
    }

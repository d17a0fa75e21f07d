"""The files of a capture: each recording grows in a hidden temporary file beside its final name and is
renamed into place (never over an existing file) when it ends, for whatever reason; and the check that a
board matches the recordings already in the dataset folder.

A write that fails (a full disk) cuts the file back to its last complete row before the error goes on,
so what is renamed into place is every complete sample that reached the disk.
"""

from __future__ import annotations

import collections
import os
import re
import secrets
import time
from pathlib import Path

import numpy as np

from harlite.data.datasets import find_recordings
from harlite.data.recordings import RATE_TOLERANCE
from harlite.data.serial_board import Board
from harlite.data.tables import TableError, open_table
from harlite.errors import DataError, HarliteError

HEAD_ROWS = 50


class Segment:
    """One recording growing in a hidden temporary file; ``close`` renames it into place, never over a file."""

    def __init__(self, folder: Path, label: str, header: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.labels = folder, collections.Counter[str]()
        self.stem = f"{_file_label(label)}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.tmp = folder / f".{self.stem}.csv.{secrets.token_hex(4)}.tmp"
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        self.size = 0  # bytes of complete rows on disk
        try:
            self._write(f"{header},label\n".encode())
        except OSError:
            os.close(self.fd)
            self.tmp.unlink(missing_ok=True)
            raise

    @property
    def samples(self) -> int:
        return self.labels.total()

    def write(self, rows: list[str], labels: collections.Counter[str]) -> None:
        """Append complete rows (newlines included) to the file now; ``labels`` counts them by label. On an
        error (a full disk) the file is cut back to the rows before, and the error raised."""
        self._write("".join(rows).encode())
        self.labels += labels

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)

    def close(self) -> Path | None:
        """The recording's final path, or None (and no file) when it holds fewer than two samples."""
        try:
            os.fsync(self.fd)
        except OSError:
            pass  # a full disk: what was written is in the page cache and reaches the disk with the rename
        os.close(self.fd)
        if self.samples < 2:
            self.tmp.unlink()
            return None
        for n in range(1, 1000):
            path = self.folder / (f"{self.stem}.csv" if n == 1 else f"{self.stem}-{n}.csv")
            try:
                os.link(self.tmp, path)  # fails if path exists: nothing is overwritten
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links
                if path.exists():
                    continue
                os.replace(self.tmp, path)
                return path
            self.tmp.unlink()
            return path
        raise HarliteError(f"{self.folder} holds 999 recordings named {self.stem}*: choose another --out.")


def _file_label(label: str) -> str:
    return re.sub(r"[^\w.-]+", "_", label) or "unlabelled"


def check_dataset(out: Path, board: Board) -> None:
    """Refuse a board whose sensors or rate differ from a recording already in the dataset ``out`` (its
    recordings' heads read through the bounded readers; what is not a regular file is passed over)."""
    if not out.is_dir():
        return
    for path in find_recordings(out).recordings:
        found = recording_head(path)
        if found is None:
            continue
        sensors, rate = found
        if sensors != board.sensors or (rate and abs(rate / board.rate_hz - 1) > RATE_TOLERANCE):
            raise DataError(
                f"{path} holds {sensors} at {rate:g} Hz but the board samples {board.sensors} at "
                f"{board.rate_hz:g} Hz: capture into another --out, or flash the firmware of this dataset's model."
            )


def recording_head(path: Path) -> tuple[str, float] | None:
    """Sensors and rate from a recording's header and first rows; None if it does not read as one."""
    try:
        with open_table(path) as table:
            time_column = table.index("time_s")
            if table.index("acc_x") is None or time_column is None:
                return None
            sensors = "acc,gyro" if table.index("gyro_x") is not None else "acc"
            rows = next(table.blocks([time_column], limit=HEAD_ROWS), None)
    except (TableError, DataError, OSError):
        return None
    times = rows.values[:, 0] if rows is not None else np.zeros(0)
    span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    return sensors, (len(times) - 1) / span if span > 0 else 0.0

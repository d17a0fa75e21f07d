"""The writer of recordings into a dataset, shared by ``harlite capture`` and ``harlite serve``.

A recording grows in a hidden temporary file beside its final name, ``<folder>/<label>-<YYYYmmdd-HHMMSS>.csv``,
and is linked into place when it is complete, never over an existing file (``-2``, ``-3``... otherwise),
so a stop at any moment never leaves a torn file and nothing is overwritten. A write that fails (a full
disk) leaves the file at its last complete row, ready to be linked into place.
"""

from __future__ import annotations

import collections
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from harlite.errors import HarliteError


class RecordingFile:
    """One recording growing in a hidden temporary file; ``close`` renames it into place, never over a file."""

    def __init__(self, folder: Path, label: str, header: str | None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.labels = folder, collections.Counter[str]()
        self.stem = f"{_file_label(label)}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.tmp = folder / f".{self.stem}.csv.{secrets.token_hex(4)}.tmp"
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        self.size = 0  # bytes of complete rows on disk
        if header is not None:
            try:
                self.write_bytes(f"{header},label\n".encode())
            except OSError:
                os.close(self.fd)
                self.tmp.unlink(missing_ok=True)
                raise

    @property
    def samples(self) -> int:
        return self.labels.total()

    def write(self, rows: list[str], labels: collections.Counter[str]) -> None:
        """Append complete rows (newlines included) to the file now; ``labels`` counts them by label."""
        self.write_bytes("".join(rows).encode())
        self.labels += labels

    def write_bytes(self, data: bytes) -> None:
        """Append ``data`` (whole rows); a write that fails (a full disk) cuts the file back to the rows
        before it, then raises, so what is kept is every complete row that reached the disk."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)

    def finish(self) -> None:
        """Flush the temporary file to disk and close it."""
        try:
            os.fsync(self.fd)
        except OSError:
            pass  # a full disk: what was written is in the page cache and reaches the disk with the link
        os.close(self.fd)

    def close(self) -> Path | None:
        """The recording's final path, or None (and no file) when it holds fewer than two samples."""
        self.finish()
        if self.samples < 2:
            self.tmp.unlink()
            return None
        return self.place()

    def place(self) -> Path:
        """Link the finished temporary file to the first free ``<stem>[-n].csv`` (never over a file)."""
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
        self.tmp.unlink()
        raise HarliteError(f"{self.folder} holds 999 recordings named {self.stem}*: choose another --out.")


def write_recording(folder: Path, label: str, data: bytes, check: Callable[[Path], object] | None = None) -> Path:
    """Write a whole recording (CSV bytes, header included) as ``capture`` writes one:
    ``folder/<label>-<time>.csv`` grows in a hidden temporary file, ``check(temporary path)`` may refuse it
    (its exception propagates and nothing stays behind), then it is linked into place, never over a file."""
    segment = RecordingFile(folder, label, header=None)
    try:
        segment.write_bytes(data)
        segment.finish()
        if check is not None:
            check(segment.tmp)
    except BaseException:
        segment.tmp.unlink(missing_ok=True)
        raise
    return segment.place()


def _file_label(label: str) -> str:
    """A label as part of a file name: runs of other characters as '_', no leading dot (no hidden file)."""
    return re.sub(r"[^\w.-]+", "_", label).lstrip(".") or "unlabelled"

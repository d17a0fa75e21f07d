"""Caps on what harlite reads from outside: bytes, decompression ratio, line length, regular files only.

Every reader of a user's or a download's bytes goes through these, so that a hostile or broken input
(a zip or gzip bomb, ``/dev/zero``, a FIFO, a folder, one endless line) is a one-line error after a
small, stated amount of memory and time instead of exhausting the machine:

- ``open_regular(path)``: a regular file, opened without blocking on a FIFO; anything else refused.
- ``read_bounded(path, max_bytes, max_ratio)``: a whole file (gunzipped when it ends in ``.gz``) as bytes.
- ``open_bounded(path, max_bytes, max_ratio)``: the same as a stream, for parsers that read line by line.
- ``CappedStream``: any binary stream, cut off with an error past a byte count or a compression ratio.
- ``zip_member(archive, info, max_bytes, max_ratio)``: one zip member as a capped stream.
- ``bounded_lines(stream, max_line)``: lines of a stream, none longer than ``max_line`` bytes.

The errors are ``DataError`` unless the caller passes another ``harlite.errors`` type (``BundleError``
for a bundle's files).
"""

from __future__ import annotations

import fcntl
import gzip
import io
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from harlite.errors import DataError, HarliteError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
# A compressed input may always expand to this much, whatever its ratio (small files compress well).
RATIO_ALLOWANCE = 64 * KiB
CHUNK = 1 * MiB

ErrorType = type[HarliteError]


def _size(n: float) -> str:
    """``64 MiB``, ``1.5 GiB``; exact bytes below 1 MiB."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n):,} bytes"


def open_regular(path: str | Path, error: ErrorType = DataError) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file (symlinks followed); else ``error``.

    A FIFO is opened without blocking and refused, so a named pipe cannot hang harlite; a device such as
    ``/dev/zero`` and a folder are refused before a byte is read.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{path} does not exist.") from None
    except PermissionError:
        raise error(f"{path} cannot be read (permission denied): check its permissions.") from None
    except OSError as e:
        raise error(f"{path} cannot be opened ({e.strerror}).") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or special file"
        raise error(f"{path} is {kind}, not a regular file: pass a file.")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return os.fdopen(fd, "rb")


class CappedStream(io.RawIOBase):
    """A readable binary stream over ``source`` that raises ``error`` once more than ``max_bytes`` came out,
    or (with ``max_ratio`` and ``consumed``, the count of compressed bytes read so far) once the output
    exceeds ``max_ratio`` times the compressed input plus ``RATIO_ALLOWANCE``.

    ``what`` names the input in the message (a path, ``archive.zip/member``); closing the stream closes
    ``source`` and ``also_close``.
    """

    def __init__(
        self,
        source: BinaryIO,
        max_bytes: int,
        what: str,
        max_ratio: float | None = None,
        consumed: Callable[[], int] | None = None,
        error: ErrorType = DataError,
        also_close: tuple[BinaryIO, ...] = (),
    ) -> None:
        super().__init__()
        self.source, self.max_bytes, self.what = source, max_bytes, what
        self.max_ratio, self.consumed, self.error = max_ratio, consumed, error
        self.also_close = also_close
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.max_bytes + 1 - self.count, CHUNK)
        try:
            data = self.source.read(max(want, 1))
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
            raise self.error(f"{self.what} is damaged ({e}): get an intact copy.") from None
        self.count += len(data)
        if self.count > self.max_bytes:
            raise self.error(f"{self.what} holds more than {_size(self.max_bytes)}"
                             f"{' once decompressed' if self.consumed else ''}, more than harlite reads from "
                             "such a file: it is damaged or not what it claims to be (a decompression bomb?).")  # fmt: skip
        if self.max_ratio is not None and self.consumed is not None:
            packed = self.consumed()
            if self.count > self.max_ratio * packed + RATIO_ALLOWANCE:
                raise self.error(f"{self.what} expands more than {self.max_ratio:g} times ({_size(packed)} "
                                 f"compressed gave over {_size(self.count)}): a decompression bomb or a "
                                 "damaged file, which harlite does not unpack.")  # fmt: skip
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            for stream in (self.source, *self.also_close):
                stream.close()
        super().close()


def open_bounded(
    path: str | Path,
    max_bytes: int,
    max_ratio: float | None = None,
    compressed: bool | None = None,
    error: ErrorType = DataError,
) -> BinaryIO:
    """A buffered binary stream of ``path`` that stops with ``error`` past ``max_bytes``.

    ``compressed`` (default: the name ends in ``.gz``) gunzips on the fly; then ``max_ratio`` caps the
    expansion too. Close it (``with``) when done.
    """
    path = Path(path)
    raw = open_regular(path, error)
    gz = path.name.lower().endswith(".gz") if compressed is None else compressed
    if not gz:
        size = os.fstat(raw.fileno()).st_size
        if size > max_bytes:
            raw.close()
            raise error(f"{path} is {_size(size)}, more than the {_size(max_bytes)} harlite reads from such a file.")
        return io.BufferedReader(CappedStream(raw, max_bytes, str(path), error=error), CHUNK)
    source = gzip.GzipFile(fileobj=raw, mode="rb")  # closing it leaves raw open: the stream closes both
    return io.BufferedReader(CappedStream(source, max_bytes, str(path), max_ratio, raw.tell, error, (raw,)), CHUNK)


def read_bounded(
    path: str | Path,
    max_bytes: int,
    max_ratio: float | None = None,
    compressed: bool | None = None,
    error: ErrorType = DataError,
) -> bytes:
    """All bytes of ``path`` (gunzipped if ``compressed``, by default when it ends in ``.gz``), at most
    ``max_bytes`` of them and, compressed, at most ``max_ratio`` times the compressed size; else ``error``."""
    with open_bounded(path, max_bytes, max_ratio, compressed, error) as f:
        return f.read()


def zip_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    max_bytes: int,
    max_ratio: float,
    what: str,
    error: ErrorType = DataError,
) -> BinaryIO:
    """A capped stream of one member of ``archive``: refused at once when its declared size or ratio is
    too large, and cut off while reading if it expands beyond what it declared or beyond the caps.

    The compressed input a member can consume is its declared ``compress_size`` (zipfile reads no more),
    so the ratio is taken over that.
    """
    where = f"{what}/{info.filename}"
    if info.flag_bits & 0x1:
        raise error(f"{where} is encrypted, which harlite does not read.")
    if info.file_size > max_bytes:
        raise error(f"{where} would expand to {_size(info.file_size)}, more than the {_size(max_bytes)} harlite "
                    "reads from one member: it is damaged or a decompression bomb.")  # fmt: skip
    if info.file_size > max_ratio * info.compress_size + RATIO_ALLOWANCE:
        raise error(f"{where} would expand {info.file_size / max(info.compress_size, 1):.0f} times, more than "
                    f"{max_ratio:g}: a decompression bomb or a damaged archive, which harlite does not unpack.")  # fmt: skip
    try:
        source = archive.open(info)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, zlib.error) as e:
        raise error(f"{where} cannot be read ({e}): get an intact copy.") from None
    capped = CappedStream(source, max_bytes, where, max_ratio, lambda: info.compress_size, error)
    return io.BufferedReader(capped, CHUNK)


def bounded_lines(stream: BinaryIO, max_line: int, what: str, error: ErrorType = DataError) -> Iterator[bytes]:
    """The lines of ``stream`` (with their endings), each at most ``max_line`` bytes; a longer one is ``error``."""
    number = 0
    while line := stream.readline(max_line + 1):
        number += 1
        if len(line) > max_line and not line.endswith(b"\n"):
            raise error(f"{what} line {number} is longer than {_size(max_line)}: this is not a harlite text file.")
        yield line

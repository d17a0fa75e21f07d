"""Recordings from a board over serial: what ``harlite capture`` does.

The board (firmware/arduino/harlite_har) prints a banner line, the CSV header, one row per sample and
``#`` lines (``# pred``, ``# gap``, ``# error``), as firmware/core/harlite_serial.h specifies.
``capture`` keeps the sample rows and writes them as recordings of a dataset,
``DATASET/<subject>/<label>-<YYYYmmdd-HHMMSS>.csv`` with the ``label`` column filled per sample:

- each recording grows in a hidden temporary file beside its final name, written as the lines arrive,
  and is renamed into place (never over an existing file) when it is complete, so a stop at any moment
  (Ctrl-C, a board unplugged) keeps every complete sample and never leaves a torn file;
- a sample lost on the wire (a jump in the sample index, ``time_s`` x rate; a ``# gap`` line; a
  garbled line) is counted and ends the recording: the next sample starts a new file;
- a key press switches the label while recording (digits pick from ``labels``, ``0`` or space is
  unlabelled, ``q`` stops), and a status line on stderr shows the rate and the board's prediction.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import os
import re
import secrets
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harlite.data.recordings import RATE_TOLERANCE
from harlite.errors import DataError, HarliteError, ToolMissing
from harlite.protocol import check_label

BAUD = 115200
WAIT_S = 5.0  # how long to wait for the board's header (and, later, for any line) before giving up
DEFAULT_SUBJECT = "subject1"
BANNER_PREFIX = "# harlite "
SERIAL_FORMATS = (1,)  # the banner's format= values this module reads (HARLITE_SERIAL_VERSION)
ACC_COLUMNS = ("acc_x", "acc_y", "acc_z")
GYRO_COLUMNS = ("gyro_x", "gyro_y", "gyro_z")
SENSOR_COLUMNS = {"acc": ACC_COLUMNS, "acc,gyro": ACC_COLUMNS + GYRO_COLUMNS}
UNLABELLED = ""
# The firmware's numbers: time with 6 decimals, values with 9 (harlite_serial.c); other devices that
# print harlite's CSV (no banner) may use any decimal notation.
_FIRMWARE_TIME, _FIRMWARE_VALUE = r"\d+\.\d{6}", r"-?\d+\.\d{9}"
_ANY_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BANNER_FIELD = re.compile(r" ([a-z_]+)=(.*?)(?= [a-z_]+=|$)")
_MAX_LINE = 4096  # bytes without a newline: garbage, dropped
_STATUS_EVERY_S = {True: 0.25, False: 5.0}  # status line period on a terminal / in a log


@dataclass(frozen=True)
class Board:
    """What the board said about itself: its banner (empty without one) and its CSV header."""

    columns: tuple[str, ...]
    rate_hz: float
    banner: dict[str, str] = field(default_factory=dict)

    @property
    def sensors(self) -> str:
        return "acc,gyro" if "gyro_x" in self.columns else "acc"

    @property
    def header(self) -> str:
        return ",".join(self.columns)

    def to_dict(self) -> dict[str, Any]:
        labels = {"labels": self.banner["labels"].split(",")} if "labels" in self.banner else {}
        return {**self.banner, **labels, "sensors": self.sensors, "rate_hz": self.rate_hz, "columns": list(self.columns)}


@dataclass
class CaptureResult:
    """What a capture wrote and what it lost."""

    port: str
    out: Path
    subject: str
    board: Board | None = None
    files: list[Path] = field(default_factory=list)
    samples: int = 0  # written into files
    lost_samples: int = 0  # missing from the sample index (gaps, garbled lines, the wire)
    dropped_samples: int = 0  # received but in a piece of a single sample, which is no recording
    garbled_lines: int = 0
    board_gaps: int = 0  # '# gap' lines
    restarts: int = 0  # the board started again (banner or header again, time going back)
    board_errors: list[str] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)  # samples per label ('' unlabelled)
    elapsed_s: float = 0.0
    stopped: str = ""  # seconds, key, interrupted, disconnected, silent, changed
    error: str | None = None  # why the capture ended early (disconnected, silent, changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "port": self.port, "out": str(self.out), "subject": self.subject,
            "board": None if self.board is None else self.board.to_dict(),
            "files": [str(f) for f in self.files], "samples": self.samples, "lost_samples": self.lost_samples,
            "dropped_samples": self.dropped_samples, "garbled_lines": self.garbled_lines,
            "board_gaps": self.board_gaps, "restarts": self.restarts, "board_errors": self.board_errors,
            "labels": self.labels, "elapsed_s": round(self.elapsed_s, 3),
            "samples_per_s": round(self.samples / self.elapsed_s, 3) if self.elapsed_s else 0.0,
            "stopped": self.stopped, "error": self.error,
        }  # fmt: skip


def parse_banner(line: str) -> dict[str, str]:
    """The fields of a banner line (``# harlite format=1 firmware=... labels=...``); {} if it is not one."""
    if not line.startswith(BANNER_PREFIX):
        return {}
    return dict(_BANNER_FIELD.findall(line[len(BANNER_PREFIX) - 1 :]))


def list_ports() -> list[dict[str, Any]]:
    """The serial ports pyserial finds: device, description, hardware id, USB vendor id."""
    from serial.tools import list_ports as lp

    return [{"device": p.device, "description": p.description, "hwid": p.hwid, "vid": p.vid}
            for p in sorted(lp.comports(), key=lambda p: p.device)]  # fmt: skip


def check_subject(name: str) -> str:
    """A subject is a folder of the dataset: a label's rules (``protocol.check_label``), and no '/', '\\'
    or leading '.'."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise HarliteError(f"subject {name!r} cannot be used: it names a folder; no '/', '\\', leading '.' or "
                           "outer spaces.")  # fmt: skip
    try:
        return check_label(name)
    except HarliteError as e:
        raise HarliteError(str(e).replace("label", "subject", 1)) from None


def capture(
    port: str,
    out: str | Path,
    label: str | None = None,
    labels: tuple[str, ...] = (),
    subject: str = DEFAULT_SUBJECT,
    seconds: float | None = None,
    baud: int = BAUD,
    wait: float = WAIT_S,
    keyboard: TextIO | None = None,
    status: TextIO | None = None,
) -> CaptureResult:
    """Record the board on ``port`` into the dataset folder ``out`` until ``seconds`` of samples (the
    board's clock), ``q``, Ctrl-C, or the board going away.

    ``label`` is in force at the start (None: unlabelled); when ``keyboard`` (default stdin) is a
    terminal, keys 1-9 switch to ``labels[k-1]``, ``0`` or space to unlabelled and ``q`` stops.
    ``status`` (default stderr) gets a live status line (a carriage-return line on a terminal, a line
    every few seconds otherwise). A port that cannot be opened, a device that is not a harlite board
    within ``wait`` seconds, or a board whose sensors or rate differ from the recordings already in
    ``out`` raise ``HarliteError``; an early end after recording began is ``result.error``.
    """
    out, subject = Path(out), check_subject(subject)
    choices = tuple(check_label(name) for name in labels)
    label = None if label is None else check_label(label)
    if out.exists() and not out.is_dir():
        raise HarliteError(f"{out} is a file; --out names the dataset folder.")
    result = CaptureResult(port, out, subject)
    started = time.monotonic()
    keyboard = sys.stdin if keyboard is None else keyboard
    status = sys.stderr if status is None else status
    with _open_port(port, baud) as link, _Keyboard(keyboard) as keys, _stop_on_sigint() as stop:
        reader = _LineReader(link)
        board = _handshake(reader, port, baud, wait, stop)
        if board is None:
            result.stopped = "interrupted"
            return result
        check_dataset(out, board)
        result.board = board
        session = _Session(result, board, label or UNLABELLED, _Status(status, board, choices if keys.on else None))
        try:
            session.run(reader, keys, stop, seconds, wait, choices)
        finally:
            session.close()
    result.elapsed_s = time.monotonic() - started
    return result


def check_dataset(out: Path, board: Board) -> None:
    """Refuse a board whose sensors or rate differ from a recording already in the dataset ``out``."""
    if not out.is_dir():
        return
    for path in sorted(out.rglob("*.csv*")):
        if not path.name.endswith((".csv", ".csv.gz")) or path.name.startswith("."):
            continue
        found = _recording_head(path)
        if found is None:
            continue
        sensors, rate = found
        if sensors != board.sensors or (rate and abs(rate / board.rate_hz - 1) > RATE_TOLERANCE):
            raise DataError(
                f"{path} holds {sensors} at {rate:g} Hz but the board samples {board.sensors} at "
                f"{board.rate_hz:g} Hz: capture into another --out, or flash the firmware of this dataset's model."
            )


def _recording_head(path: Path, rows: int = 50) -> tuple[str, float] | None:
    """Sensors and rate from a recording's header and first rows; None if it does not read as one."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as f:
            lines = [line.strip() for _, line in zip(range(rows + 200), f)]
    except (OSError, EOFError):
        return None
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines or "acc_x" not in lines[0]:
        return None
    columns = [c.strip().lower() for c in lines[0].split(",")]
    sensors = "acc,gyro" if "gyro_x" in columns else "acc"
    try:
        times = [float(line.split(",")[columns.index("time_s")]) for line in lines[1 : rows + 1]]
    except (ValueError, IndexError):
        return sensors, 0.0
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return sensors, (len(times) - 1) / span if span > 0 else 0.0


@contextlib.contextmanager
def _open_port(port: str, baud: int) -> Iterator[Any]:
    """The port, opened exclusively; a port that cannot be opened is a one-line HarliteError."""
    try:
        import serial
    except ImportError:
        raise ToolMissing("pyserial is missing: pip install pyserial") from None
    try:
        link = serial.Serial(port, baud, timeout=0.05, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as error:
        raise HarliteError(_port_problem(port, error)) from None
    try:
        yield link
    finally:
        link.close()


def _port_problem(port: str, error: Exception) -> str:
    """Why ``port`` did not open, and what to do."""
    import errno

    code, text = getattr(error, "errno", None), str(error)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "FileNotFoundError" in text:
        return f"{port} does not exist: plug the board in, or pick a port from 'harlite capture --list-ports'."
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "PermissionError" in text:
        return (f"{port} is busy: another program has it open (a serial monitor, arduino-cli monitor, "
                "another capture); close it and try again.")  # fmt: skip
    if code in (errno.EACCES, errno.EPERM):
        return (f"no permission to open {port}: add yourself to its group (Linux: sudo usermod -aG dialout "
                "$USER, then log in again).")  # fmt: skip
    return f"cannot open {port}: {text}; check --port and --baud."


class _LineReader:
    """Lines from the port, split on newlines; a read error or end of data is ``closed``."""

    def __init__(self, link: Any) -> None:
        self.link, self.pending, self.closed = link, b"", ""
        self.bytes = self.binary = 0  # received, and not printable ASCII (a wrong baud rate shows here)

    def lines(self) -> list[bytes]:
        """The complete lines that arrived within the port's timeout (maybe none)."""
        import serial

        try:
            chunk = self.link.read(self.link.in_waiting or 1)
        except (serial.SerialException, OSError) as error:  # the board went away
            self.closed = str(error) or type(error).__name__
            return []
        self.bytes += len(chunk)
        self.binary += len(chunk) - len(chunk.translate(None, _NOT_TEXT))
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        if len(self.pending) > _MAX_LINE:
            lines.append(self.pending)
            self.pending = b""
        return [line.rstrip(b"\r") for line in lines]

    def unread(self, lines: list[bytes]) -> None:
        """Give lines back: the next ``lines()`` returns them first."""
        self.pending = b"".join(line + b"\n" for line in lines) + self.pending


_NOT_TEXT = bytes(b for b in range(256) if b >= 127 or (b < 32 and b not in b"\t\r\n"))


def _handshake(reader: _LineReader, port: str, baud: int, wait: float, stop: threading.Event) -> Board | None:
    """Wait up to ``wait`` s for the CSV header (and the banner before it); None if stopped first."""
    banner: dict[str, str] = {}
    first_text = error = ""
    deadline = time.monotonic() + wait
    while not stop.is_set():
        lines = reader.lines()
        for i, raw in enumerate(lines):
            line = raw.decode("ascii", "replace")
            first_text = first_text or line.strip()
            error = line[2:] if line.startswith("# error:") else error
            if line.startswith(BANNER_PREFIX):
                banner = parse_banner(line)
            elif line.startswith("time_s,"):
                reader.unread(lines[i + 1 :])
                return _board(line, banner, reader, port)
        if reader.closed:
            raise HarliteError(f"{port} closed before the board's CSV header ({reader.closed}): replug the board.")
        if time.monotonic() > deadline and error:  # the sketch's Fail() repeats its reason
            raise HarliteError(f"the board on {port} failed to start: {error}")
        if time.monotonic() > deadline:
            raise HarliteError(_not_a_board(port, baud, wait, reader, first_text))
    return None


def _not_a_board(port: str, baud: int, wait: float, reader: _LineReader, first_text: str) -> str:
    """Why no CSV header came: silence, garbage (wrong baud rate) or some other text."""
    if reader.bytes == 0:
        return (f"no data from {port} in {wait:g} s: is it a harlite board running firmware/arduino/harlite_har "
                "with HARLITE_PRINT_SAMPLES 1? Press its reset button, or see 'harlite capture --list-ports'.")  # fmt: skip
    if reader.binary > 0.05 * reader.bytes:
        return (f"{port} sends garbage at {baud} baud ({reader.binary} of {reader.bytes} bytes not text): "
                f"wrong baud rate? The harlite sketch uses --baud {BAUD}.")  # fmt: skip
    return (f"{port} sends text but no harlite CSV header in {wait:g} s (first line {first_text[:60]!r}): "
            "not a harlite board? Flash firmware/arduino/harlite_har, or press the board's reset button.")  # fmt: skip


def _board(header: str, banner: dict[str, str], reader: _LineReader, port: str) -> Board:
    """The board from its CSV header and banner (without a banner the rate comes from time_s)."""
    columns = tuple(c.strip() for c in header.split(","))
    if columns[1:] not in SENSOR_COLUMNS.values():
        raise HarliteError(f"{port}: the CSV header {header!r} is not harlite's "
                           "(time_s,acc_x,acc_y,acc_z[,gyro_x,gyro_y,gyro_z]).")  # fmt: skip
    if not banner:
        return Board(columns, _rate_from_rows(reader, len(columns), port))
    if banner.get("format", "").isdigit() and int(banner["format"]) not in SERIAL_FORMATS:
        raise HarliteError(f"the board's serial format {banner['format']} is newer than this harlite reads "
                           f"({', '.join(map(str, SERIAL_FORMATS))}): update harlite.")  # fmt: skip
    try:
        rate = float(banner["rate_hz"])
    except (KeyError, ValueError):
        raise HarliteError(f"{port}: the board's banner has no rate_hz: reflash firmware/arduino/harlite_har.") from None
    if banner.get("sensors", "") != ("acc,gyro" if len(columns) == 7 else "acc"):
        raise HarliteError(f"{port}: the banner's sensors={banner.get('sensors')} and the CSV header {header!r} "
                           "disagree: reflash the firmware.")  # fmt: skip
    return Board(columns, rate, banner)


def _rate_from_rows(reader: _LineReader, n_columns: int, port: str) -> float:
    """A board without banner: the rate from the first two sample rows' times (held back for the session)."""
    rows: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    while len(rows) < 2 and time.monotonic() < deadline and not reader.closed:
        rows += [r for r in reader.lines() if r.count(b",") == n_columns - 1 and not r.startswith(b"#")]
    try:
        step = float(rows[1].split(b",")[0]) - float(rows[0].split(b",")[0])
    except (IndexError, ValueError):
        step = 0.0
    if step <= 0:
        raise HarliteError(f"{port}: no banner and no two sample rows to tell the rate from: reflash the firmware.")
    reader.unread(rows)
    return round(1.0 / step, 3)


class _Segment:
    """One recording growing in a hidden temporary file; ``close`` renames it into place, never over a file."""

    def __init__(self, folder: Path, label: str, header: str | None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.labels = folder, collections.Counter[str]()
        self.stem = f"{_file_label(label)}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.tmp = folder / f".{self.stem}.csv.{secrets.token_hex(4)}.tmp"
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        if header is not None:
            self.write_bytes(f"{header},label\n".encode())

    @property
    def samples(self) -> int:
        return self.labels.total()

    def write(self, rows: list[str], labels: collections.Counter[str]) -> None:
        """Append complete rows (newlines included) to the file now; ``labels`` counts them by label."""
        self.write_bytes("".join(rows).encode())
        self.labels += labels

    def write_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def finish(self) -> None:
        """Flush the temporary file to disk and close it."""
        os.fsync(self.fd)
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
    segment = _Segment(folder, label, header=None)
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


class _Status:
    """The live status line: elapsed time, samples/s against the board's rate, label, prediction, lost."""

    def __init__(self, stream: TextIO, board: Board, choices: tuple[str, ...] | None) -> None:
        self.stream, self.board, self.choices = stream, board, choices
        self.tty = stream.isatty()
        self.start = self.last = time.monotonic()
        self.arrivals: collections.deque[tuple[float, int]] = collections.deque()
        self.prediction = "-"
        self.shown = False

    def update(self, received: int, lost: int, label: str, force: bool = False) -> None:
        """Note ``received`` samples so far; redraw when the period is up (or ``force``)."""
        now = time.monotonic()
        self.arrivals.append((now, received))
        while now - self.arrivals[0][0] > 5.0:
            self.arrivals.popleft()
        if not force and now - self.last < _STATUS_EVERY_S[self.tty]:
            return
        self.last = now
        (t0, n0), (t1, n1) = self.arrivals[0], self.arrivals[-1]
        rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        text = (f"{now - self.start:7.1f} s  {rate:6.1f}/{self.board.rate_hz:g} samples/s  "
                f"label {label or '(none)'}  board {self.prediction}  lost {lost}")  # fmt: skip
        if self.choices is not None:
            text += "  [" + " ".join(f"{k + 1}={c}" for k, c in enumerate(self.choices[:9])) + " 0=none q=stop]"
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
            self.shown = True
        else:
            self.stream.write(f"capture: {text}\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        """A message on a line of its own (the status line is redrawn below it)."""
        self.end()
        self.stream.write(f"capture: {text}\n")
        self.stream.flush()

    def end(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.shown = False


class _Session:
    """Sample rows into segments; counts what was lost; keys and the status line."""

    def __init__(self, result: CaptureResult, board: Board, label: str, status: _Status) -> None:
        self.result, self.board, self.label, self.status = result, board, label, status
        number = _FIRMWARE_VALUE if board.banner else _ANY_NUMBER
        time_pattern = _FIRMWARE_TIME if board.banner else _ANY_NUMBER
        self.row = re.compile(rf"{time_pattern}(?:,{number}){{{len(board.columns) - 1}}}")
        self.segment: _Segment | None = None
        self.previous: float | None = None  # time_s of the last sample
        self.rows: list[str] = []  # rows of the segment not yet written, and their labels
        self.row_labels = collections.Counter[str]()
        self.received = 0  # sample rows accepted

    def run(self, reader: _LineReader, keys: _Keyboard, stop: threading.Event, seconds: float | None,
            wait: float, choices: tuple[str, ...]) -> None:  # fmt: skip
        """Record until a reason to stop (``result.stopped``)."""
        target = None if seconds is None else round(seconds * self.board.rate_hz)
        result, silence = self.result, max(wait, 3.0 / self.board.rate_hz)
        heard, received = time.monotonic(), 0  # when the last sample came, and the count then
        while not result.stopped:
            lines = reader.lines()
            for raw in lines:
                self._line(raw)
                if target is not None and self.received + result.lost_samples >= target:
                    result.stopped = "seconds"
                if result.stopped:
                    break
            self._flush()
            if self.received > received:
                heard, received = time.monotonic(), self.received
            if result.stopped:
                break
            if stop.is_set():
                result.stopped = "interrupted"
            elif reader.closed:
                result.stopped, result.error = "disconnected", f"the board on {result.port} went away (unplugged or reset?)"
                result.garbled_lines += bool(reader.pending)  # the line it was sending
            elif time.monotonic() - heard > silence:
                result.stopped = "silent"
                result.error = (f"the board on {result.port} sent no sample for {silence:g} s "
                                "(HARLITE_PRINT_SAMPLES 0, or the sketch hangs?)")  # fmt: skip
            elif self._keys(keys.read(), choices):
                result.stopped = "key"
            self.status.update(self.received, result.lost_samples, self.label)

    def _line(self, raw: bytes) -> None:
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            self.result.garbled_lines += 1
            return
        if line.startswith("#"):
            self._comment(line)
        elif line.startswith("time_s,"):
            self._restart(line, None)
        elif self.row.fullmatch(line):
            self._sample(line)
        elif line:
            self.result.garbled_lines += 1

    def _comment(self, line: str) -> None:
        if line.startswith(BANNER_PREFIX):
            self._restart(None, parse_banner(line))
        elif line.startswith("# pred,"):
            fields = dict(part.partition("=")[::2] for part in line.split(",")[1:])
            self.status.prediction = f"{fields.get('pred_smoothed', '?')} ({fields.get('p', '?')})"
        elif line.startswith("# gap:"):
            self.result.board_gaps += 1
        elif line.startswith("# error:") and len(self.result.board_errors) < 20:
            self.result.board_errors.append(line[2:])
            self.status.say(f"board: {line[2:]}")

    def _restart(self, header: str | None, banner: dict[str, str] | None) -> None:
        """The board printed its banner or CSV header again (a reset, the port opened again): a new
        recording; a board that now samples other sensors or at another rate ends the capture."""
        self._split()
        self.previous = None
        changed = False
        if header is not None:
            self.result.restarts += 1
            changed = tuple(c.strip() for c in header.split(",")) != self.board.columns
        if banner:
            changed = _float(banner.get("rate_hz", "")) != self.board.rate_hz
        if changed:
            self.result.stopped = "changed"
            self.result.error = (f"the board on {self.result.port} restarted with other sensors or another rate; "
                                 "capture it into another --out")  # fmt: skip

    def _sample(self, line: str) -> None:
        t = float(line[: line.index(",")])
        if self.previous is not None:
            step = round((t - self.previous) * self.board.rate_hz)
            if step != 1:
                if step > 1:
                    self.result.lost_samples += step - 1
                else:
                    self.result.restarts += 1  # time went back: the board restarted without a banner
                self._split()
        self.previous = t
        if self.segment is None:
            self.segment = _Segment(self.result.out / self.result.subject, self.label, self.board.header)
        self.rows.append(f"{line},{self.label}\n")
        self.row_labels[self.label] += 1
        self.received += 1

    def _flush(self) -> None:
        if self.rows and self.segment is not None:
            self.segment.write(self.rows, self.row_labels)
        self.rows, self.row_labels = [], collections.Counter()

    def _split(self) -> None:
        """End the current recording; the next sample starts a new one."""
        self._flush()
        segment, self.segment = self.segment, None
        if segment is None:
            return
        path = segment.close()
        if path is None:
            self.result.dropped_samples += segment.samples
            return
        self.result.files.append(path)
        self.result.samples += segment.samples
        for name, n in segment.labels.items():
            self.result.labels[name] = self.result.labels.get(name, 0) + n

    def _keys(self, pressed: str, choices: tuple[str, ...]) -> bool:
        """Apply key presses; True when one asks to stop."""
        for key in pressed:
            if key in "qQ":
                return True
            if key in "0 ":
                new = UNLABELLED
            elif key.isdigit() and int(key) <= len(choices):
                new = choices[int(key) - 1]
            else:
                continue
            if new != self.label:
                self._flush()
                self.label = new
                self.status.say(f"label {new or '(none)'} from t = {self.previous or 0:.2f} s")
                self.status.update(self.received, self.result.lost_samples, self.label, force=True)
        return False

    def close(self) -> None:
        self._split()
        self.status.update(self.received, self.result.lost_samples, self.label, force=True)
        self.status.end()


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class _Keyboard:
    """Single key presses from a terminal (cbreak mode, restored on exit); nothing from anything else."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.saved, self.on = stream, None, False

    def __enter__(self) -> _Keyboard:
        try:
            import termios
            import tty

            if self.stream.isatty():
                fd = self.stream.fileno()
                self.saved = termios.tcgetattr(fd)
                tty.setcbreak(fd)
                self.on = True
        except (ImportError, OSError, ValueError):
            self.on = False
        return self

    def read(self) -> str:
        if not self.on:
            return ""
        fd = self.stream.fileno()
        if not select.select([fd], [], [], 0)[0]:
            return ""
        return os.read(fd, 64).decode("utf-8", "replace")

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self.saved)


@contextlib.contextmanager
def _stop_on_sigint() -> Iterator[threading.Event]:
    """Ctrl-C sets the event (a clean stop: complete files kept); a second Ctrl-C interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)

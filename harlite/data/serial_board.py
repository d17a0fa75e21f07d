"""What a harlite board says over serial, read from the port: its banner, its CSV header, its lines.

The board (firmware/arduino/harlite_har) prints a banner line, the CSV header, one row per sample and
``#`` lines (``# pred``, ``# gap``, ``# error``), as harlite/board/c/harlite_serial.h specifies.
``handshake`` waits for the header (and the banner before it) and returns the ``Board``."""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from harlite.data.recordings import MAX_RATE_HZ, MIN_RATE_HZ
from harlite.errors import HarliteError, ToolMissing
from harlite.io.terminal import printable

BAUD = 115200
WAIT_S = 5.0  # how long to wait for the board's header (and, later, for any line) before giving up
BANNER_PREFIX = "# harlite "
SERIAL_FORMATS = (1,)  # the banner's format= values this module reads (HARLITE_SERIAL_VERSION)
ACC_COLUMNS = ("acc_x", "acc_y", "acc_z")
GYRO_COLUMNS = ("gyro_x", "gyro_y", "gyro_z")
SENSOR_COLUMNS = {"acc": ACC_COLUMNS, "acc,gyro": ACC_COLUMNS + GYRO_COLUMNS}
# The firmware's numbers: time with 6 decimals, values with 9 (harlite_serial.c); other devices that
# print harlite's CSV (no banner) may use any decimal notation.
FIRMWARE_TIME, FIRMWARE_VALUE = r"\d+\.\d{6}", r"-?\d+\.\d{9}"
ANY_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BANNER_FIELD = re.compile(r" ([a-z_]+)=(.*?)(?= [a-z_]+=|$)")
_MAX_LINE = 4096  # bytes without a newline: garbage, dropped


@dataclass(frozen=True)
class Board:
    """What the board said about itself: its banner (empty without one) and its CSV header."""

    columns: tuple[str, ...]
    rate_hz: float
    banner: dict[str, str] = field(default_factory=dict)
    time_scale: float = 1.0  # seconds per unit of the board's time column (a device without banner: ms, us)

    @property
    def sensors(self) -> str:
        return "acc,gyro" if "gyro_x" in self.columns else "acc"

    @property
    def header(self) -> str:
        return ",".join(self.columns)

    def to_dict(self) -> dict[str, Any]:
        labels = {"labels": self.banner["labels"].split(",")} if "labels" in self.banner else {}
        return {
            **self.banner,
            **labels,
            "sensors": self.sensors,
            "rate_hz": self.rate_hz,
            "columns": list(self.columns),
        }


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


@contextlib.contextmanager
def open_port(port: str, baud: int) -> Iterator[Any]:
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


class LineReader:
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


def handshake(reader: LineReader, port: str, baud: int, wait: float, stop: threading.Event) -> Board | None:
    """Wait up to ``wait`` s for the CSV header (and the banner before it); None if stopped first."""
    banner: dict[str, str] = {}
    first_text = error = ""
    deadline = time.monotonic() + wait
    while not stop.is_set():
        lines = reader.lines()
        for i, raw in enumerate(lines):
            line = raw.decode("utf-8", "replace")
            first_text = first_text or line.strip()
            error = printable(line[2:], 200) if line.startswith("# error:") else error
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


def _not_a_board(port: str, baud: int, wait: float, reader: LineReader, first_text: str) -> str:
    """Why no CSV header came: silence, garbage (wrong baud rate) or some other text."""
    if reader.bytes == 0:
        return (f"no data from {port} in {wait:g} s: is it a harlite board running firmware/arduino/harlite_har "
                "with HARLITE_PRINT_SAMPLES 1? Press its reset button, or see 'harlite capture --list-ports'.")  # fmt: skip
    if reader.binary > 0.05 * reader.bytes:
        return (f"{port} sends garbage at {baud} baud ({reader.binary} of {reader.bytes} bytes not text): "
                f"wrong baud rate? The harlite sketch uses --baud {BAUD}.")  # fmt: skip
    return (f"{port} sends text but no harlite CSV header in {wait:g} s (first line {first_text[:60]!r}): "
            "not a harlite board? Flash firmware/arduino/harlite_har, or press the board's reset button.")  # fmt: skip


def _board(header: str, banner: dict[str, str], reader: LineReader, port: str) -> Board:
    """The board from its CSV header and banner (without a banner the rate comes from time_s)."""
    columns = tuple(c.strip() for c in header.split(","))
    if columns[1:] not in SENSOR_COLUMNS.values():
        raise HarliteError(f"{port}: the CSV header {header!r} is not harlite's "
                           "(time_s,acc_x,acc_y,acc_z[,gyro_x,gyro_y,gyro_z]).")  # fmt: skip
    if not banner:
        return _board_from_rows(reader, columns, port)
    if banner.get("format", "").isdigit() and int(banner["format"]) not in SERIAL_FORMATS:
        raise HarliteError(f"the board's serial format {banner['format']} is newer than this harlite reads "
                           f"({', '.join(map(str, SERIAL_FORMATS))}): update harlite.")  # fmt: skip
    try:
        rate = float(banner["rate_hz"])
    except (KeyError, ValueError):
        raise HarliteError(
            f"{port}: the board's banner has no rate_hz: reflash firmware/arduino/harlite_har."
        ) from None
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:  # also NaN
        raise HarliteError(f"{port}: the board's banner says rate_hz={printable(banner['rate_hz'], 40)}, but a board samples "
                           f"at {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz: reflash firmware/arduino/harlite_har.")  # fmt: skip
    if banner.get("sensors", "") != ("acc,gyro" if len(columns) == 7 else "acc"):
        raise HarliteError(f"{port}: the banner's sensors={banner.get('sensors')} and the CSV header {header!r} "
                           "disagree: reflash the firmware.")  # fmt: skip
    return Board(columns, rate, banner)


def _board_from_rows(reader: LineReader, columns: tuple[str, ...], port: str) -> Board:
    """A board without banner: the rate (and the time column's unit) from the first two sample rows' times,
    which are held back for the session."""
    n_columns = len(columns)
    rows: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    while len(rows) < 2 and time.monotonic() < deadline and not reader.closed:
        rows += [r for r in reader.lines() if r.count(b",") == n_columns - 1 and not r.startswith(b"#")]
    try:
        step = float(rows[1].split(b",")[0]) - float(rows[0].split(b",")[0])
    except (IndexError, ValueError):
        step = 0.0
    if not step > 0 or not math.isfinite(step):
        raise HarliteError(f"{port}: no banner and no two sample rows to tell the rate from: reflash the firmware.")
    for scale in (1.0, 1e-3, 1e-6):  # time_s in seconds, or a device printing millis() or micros()
        rate = round(1.0 / (step * scale), 3)
        if MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            reader.unread(rows)
            return Board(columns, rate, time_scale=scale)
    raise HarliteError(f"{port}: no banner, and the first two rows' time_s differ by {step:g}, which gives no rate a board "
                       f"samples at ({MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz) in seconds, ms or us: print time_s in seconds.")  # fmt: skip

"""Recordings from a board over serial: what ``harlite capture`` does.

``capture`` keeps the sample rows the board prints (``harlite.data.serial_board``) and writes them as
recordings of a dataset, ``DATASET/<subject>/<label>-<YYYYmmdd-HHMMSS>.csv`` with the ``label`` column
filled per sample:

- each recording grows in a hidden temporary file beside its final name, written as the lines arrive,
  and is renamed into place (never over an existing file) when it is complete, so a stop at any moment
  (Ctrl-C, a board unplugged) keeps every complete sample and never leaves a torn file;
- a sample lost on the wire (a jump in the sample index, ``time_s`` x rate; a ``# gap`` line; a
  garbled line) is counted and ends the recording: the next sample starts a new file;
- a key press switches the label while recording (digits pick from ``labels``, ``0`` or space is
  unlabelled, ``q`` stops), and a status line on stderr shows the rate and the board's prediction."""

from __future__ import annotations

import collections
import errno
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harlite.core.protocol import check_label
from harlite.data.capture_console import Keyboard, Status, Stop, stop_on_signals
from harlite.data.datasets import check_recorded_protocol, check_subject
from harlite.data.recording_files import RecordingFile
from harlite.data.serial_board import (
    ANY_NUMBER,
    BANNER_PREFIX,
    BAUD,
    FIRMWARE_TIME,
    FIRMWARE_VALUE,
    WAIT_S,
    Board,
    LineReader,
    handshake,
    open_port,
    parse_banner,
)
from harlite.errors import HarliteError
from harlite.io.terminal import printable

DEFAULT_SUBJECT = "subject1"
UNLABELLED = ""


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
    stopped: str = ""  # seconds, key, interrupted, terminated, hung up, disconnected, silent, changed, disk full
    error: str | None = None  # why the capture ended early (disconnected, silent, changed, disk full)

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
    with open_port(port, baud) as link, Keyboard(keyboard) as keys, stop_on_signals() as stop:
        reader = LineReader(link)
        board = handshake(reader, port, baud, wait, stop)
        if board is None:
            result.stopped = stop.reason
            return result
        check_recorded_protocol(out, board.sensors, board.rate_hz)
        result.board = board
        session = _Session(result, board, label or UNLABELLED, Status(status, board, choices if keys.on else None))
        try:
            session.run(reader, keys, stop, seconds, wait, choices)
        finally:
            session.close()
    result.elapsed_s = time.monotonic() - started
    return result


class _Session:
    """Sample rows into segments; counts what was lost; keys and the status line."""

    def __init__(self, result: CaptureResult, board: Board, label: str, status: Status) -> None:
        self.result, self.board, self.label, self.status = result, board, label, status
        number = FIRMWARE_VALUE if board.banner else ANY_NUMBER
        time_pattern = FIRMWARE_TIME if board.banner else ANY_NUMBER
        self.row = re.compile(rf"{time_pattern}(?:,{number}){{{len(board.columns) - 1}}}")
        self.segment: RecordingFile | None = None
        self.previous: float | None = None  # time_s of the last sample
        self.rows: list[str] = []  # rows of the segment not yet written, and their labels
        self.row_labels = collections.Counter[str]()
        self.received = 0  # sample rows accepted

    def run(self, reader: LineReader, keys: Keyboard, stop: Stop, seconds: float | None,
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
                result.stopped = stop.reason
            elif reader.closed:
                result.stopped, result.error = (
                    "disconnected",
                    f"the board on {result.port} went away (unplugged or reset?)",
                )
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
            line = raw.decode("utf-8")  # labels in '# pred' lines may be any UTF-8 text
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
            self.result.board_errors.append(printable(line[2:], 300))
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
        t = float(line[: line.index(",")]) * self.board.time_scale
        if self.board.time_scale != 1.0:  # a device printing ms or us: the file holds seconds
            line = f"{t:.6f}{line[line.index(',') :]}"
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
            try:
                self.segment = RecordingFile(self.result.out / self.result.subject, self.label, self.board.header)
            except OSError as error:
                self._failed(error, self.result.out / self.result.subject)
                return
        self.rows.append(f"{line},{self.label}\n")
        self.row_labels[self.label] += 1
        self.received += 1

    def _flush(self) -> None:
        if self.rows and self.segment is not None:
            try:
                self.segment.write(self.rows, self.row_labels)
            except OSError as error:  # a full disk: keep what reached it, and stop
                self.rows, self.row_labels = [], collections.Counter()
                self._failed(error, self.segment.folder)
                return
        self.rows, self.row_labels = [], collections.Counter()

    def _failed(self, error: OSError, folder: Path) -> None:
        """Writing failed: end the recording (its complete rows renamed into place) and stop."""
        self.result.stopped = "disk full" if error.errno == errno.ENOSPC else "write failed"
        segment, self.segment = self.segment, None
        path = self._close(segment) if segment is not None else None
        kept = f"the samples before are kept in {path}" if path else "no sample of this recording could be kept"
        self.result.error = f"cannot write to {folder} ({error.strerror}); {kept}; free some space and capture again"

    def _split(self) -> None:
        """End the current recording; the next sample starts a new one."""
        self._flush()
        segment, self.segment = self.segment, None
        if segment is not None:
            self._close(segment)

    def _close(self, segment: RecordingFile) -> Path | None:
        """Rename a finished recording into place and count it; None when too short to keep."""
        path = segment.close()
        if path is None:
            self.result.dropped_samples += segment.samples
            return None
        self.result.files.append(path)
        self.result.samples += segment.samples
        for name, n in segment.labels.items():
            self.result.labels[name] = self.result.labels.get(name, 0) + n
        return path

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

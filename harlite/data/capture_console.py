"""The console side of a capture: the live status line, key presses, and the signals that stop it.

Everything the board says that reaches the terminal goes through ``harlite.io.terminal.printable``; a
terminal that went away (SIGHUP) makes the status line fall silent instead of failing the capture.
SIGINT (Ctrl-C), SIGTERM, SIGHUP and the other signals that would end the process stop the capture
cleanly: every complete sample is kept and its file renamed into place; a second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from harlite.data.serial_board import Board
from harlite.io.terminal import printable

_STATUS_EVERY_S = {True: 0.25, False: 5.0}  # status line period on a terminal / in a log
# Signals that would end the process: each stops the capture cleanly instead (SIGKILL cannot be caught).
STOP_SIGNALS = {"SIGINT": "interrupted", "SIGTERM": "terminated", "SIGHUP": "hung up", "SIGQUIT": "quit",
                "SIGUSR1": "signalled", "SIGUSR2": "signalled", "SIGALRM": "signalled", "SIGXCPU": "signalled"}  # fmt: skip


class Status:
    """The live status line: elapsed time, samples/s against the board's rate, label, prediction, lost."""

    def __init__(self, stream: TextIO, board: Board, choices: tuple[str, ...] | None) -> None:
        self.stream, self.board, self.choices = stream, board, choices
        try:
            self.tty = stream.isatty()
        except (OSError, ValueError):
            self.tty = False
        self.start = self.last = time.monotonic()
        self.arrivals: collections.deque[tuple[float, int]] = collections.deque()
        self.prediction = "-"
        self.shown = False
        self.gone = False  # the terminal went away: say nothing more

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
                f"label {label or '(none)'}  board {printable(self.prediction, 40)}  lost {lost}")  # fmt: skip
        if self.choices is not None:
            text += "  [" + " ".join(f"{k + 1}={c}" for k, c in enumerate(self.choices[:9])) + " 0=none q=stop]"
        if self.tty:
            self._write(f"\r{text}\x1b[K")
            self.shown = True
        else:
            self._write(f"capture: {text}\n")

    def say(self, text: str) -> None:
        """A message on a line of its own (the status line is redrawn below it); control characters shown."""
        self.end()
        self._write(f"capture: {printable(text, 300)}\n")

    def end(self) -> None:
        if self.shown:
            self._write("\n")
            self.shown = False

    def _write(self, text: str) -> None:
        if self.gone:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.gone = True


class Keyboard:
    """Single key presses from a terminal (cbreak mode, restored on exit); nothing from anything else."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.saved, self.on = stream, None, False

    def __enter__(self) -> Keyboard:
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
        try:
            fd = self.stream.fileno()
            if not select.select([fd], [], [], 0)[0]:
                return ""
            return os.read(fd, 64).decode("utf-8", "replace")
        except (OSError, ValueError):  # the terminal went away
            self.on = False
            return ""

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            with contextlib.suppress(OSError, ValueError):
                termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self.saved)


class Stop(threading.Event):
    """Set by a stopping signal; ``reason`` says which (interrupted, terminated, hung up)."""

    reason = "interrupted"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """SIGINT, SIGTERM, SIGHUP and the other STOP_SIGNALS set the event (a clean stop: complete files kept
    and renamed into place); a second Ctrl-C interrupts at once; SIGXFSZ is ignored (the write fails and
    is handled). Outside the main thread no handler can be set."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not stop.is_set():
            stop.reason = STOP_SIGNALS.get(signal.Signals(signum).name, "interrupted")
        stop.set()

    names = [n for n in STOP_SIGNALS if hasattr(signal, n)]
    previous = {n: signal.signal(getattr(signal, n), handler) for n in names}
    if hasattr(signal, "SIGXFSZ"):  # past a file size limit a write fails (and is handled) instead of killing
        previous["SIGXFSZ"] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield stop
    finally:
        for n, old in previous.items():
            signal.signal(getattr(signal, n), old)

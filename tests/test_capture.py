"""``harlite capture`` through real pseudo-terminals, fed by a fake board.

The fake board is the firmware's own formatting: harlite/board/c/harlite_serial.c compiled with
firmware/tests/test_core.c, whose ``board`` mode prints what the sketch prints (banner, CSV header,
sample rows, ``# pred`` and ``# gap`` lines) for a real HAPT recording. Its lines go into the master
side of a pty; capture opens the slave (through a symlink) with pyserial, as it would /dev/ttyACM0.
The board starts talking when the port is opened, as the sketch does when the host raises DTR: here,
when the open flushes the pty's input, which the master sees in packet mode.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_firmware import TESTS
from tools import SANITIZERS, compile_ok, tool

from harlite.board.sources import C_DIR as CORE
from harlite.board.sources import CORE_SOURCES
from harlite.board.toolchain import WARNINGS
from harlite.bundle.loader import load_bundle
from harlite.codegen.tflm import config_header
from harlite.core.protocol import UCI_LABELS as LABELS
from harlite.data import recording_files
from harlite.data.capture import capture
from harlite.data.hapt import load_hapt
from harlite.data.recording_files import RecordingFile
from harlite.data.recordings import read_csv
from harlite.data.serial_board import parse_banner

REPO = Path(__file__).resolve().parents[1]
RELEASED = REPO / "models" / "cnn_lstm"
WINDOW, HOP = 128, 64


# ---- the fake board --------------------------------------------------------------------------------


def write_config(directory: Path, manifest: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "harlite_model_config.h").write_text(config_header(manifest, comment="test_capture"))
    return directory


def build_board(config_dir: Path) -> Path:
    """test_core (with its ``board`` mode) against ``config_dir``'s model config, under the sanitizers."""
    out = config_dir / "test_core"
    flags = ["-std=c99", "-O1", "-g", *WARNINGS, *SANITIZERS, f"-I{config_dir}", f"-I{CORE}"]
    compile_ok([tool("gcc"), *flags, *CORE_SOURCES, TESTS / "test_core.c", "-o", out])
    return out


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The board program for the released model's config (HAPT's six activities, acc + gyro, 50 Hz)."""
    return build_board(write_config(tmp_path_factory.mktemp("board"), load_bundle(RELEASED).manifest))


OWN_LABELS = ["brush teeth", "wash hands", "walk", "sit down", "stand", "lie"]


@pytest.fixture(scope="module")
def own_board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A board of a model with labels of its own (names with spaces) at 12.5 Hz."""
    manifest = load_bundle(RELEASED).manifest
    own = {**manifest, "rate_hz": 12.5, "frontend": {**manifest["frontend"], "rate_hz": 12.5}, "labels": OWN_LABELS}
    return build_board(write_config(tmp_path_factory.mktemp("own"), own))


def window_scores(labels: np.ndarray, n_classes: int = 6) -> np.ndarray:
    """int8 model outputs, one row per window, that make the window's majority activity the prediction."""
    starts = range(0, len(labels) - WINDOW + 1, HOP)
    top = [np.bincount(np.maximum(labels[s : s + WINDOW], 0), minlength=n_classes).argmax() for s in starts]
    scores = np.full((len(top), n_classes), -100, dtype=np.int8)
    scores[np.arange(len(top)), top] = 100
    return scores


def board_lines(
    program: Path, raw: np.ndarray, labels: np.ndarray | None = None, gaps: tuple[str, ...] = ()
) -> list[bytes]:
    """What the board prints for ``raw`` (and, with ``labels``, one '# pred' line per window)."""
    work = program.parent
    raw.astype("<f4").tofile(work / "raw.bin")
    scores = "-"
    if labels is not None:
        window_scores(labels).tofile(work / "scores.bin")
        scores = "scores.bin"
    done = subprocess.run([program, "board", "raw.bin", scores, *gaps], cwd=work, capture_output=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def sample_rows(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line[:1].isdigit()]


class FakeBoard:
    """A pty whose master plays the board: ``port`` (a symlink to the slave) is what capture opens."""

    def __init__(self, directory: Path) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        fcntl.ioctl(self.master, termios.TIOCPKT, struct.pack("i", 1))  # see the slave's input flush
        os.set_blocking(self.master, False)
        self.port = str(directory / "ttyBOARD")
        os.symlink(os.ttyname(self.slave), self.port)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.stopping = threading.Event()  # set: the writer gives up (the test is done with it)

    def wait_open(self, timeout: float = 20.0) -> None:
        """Until a program opens the port (pyserial flushes the input when it opens)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.master], [], [], 0.05)[0]:
                packet = os.read(self.master, 4096)
                if packet[0] & termios.TIOCPKT_FLUSHREAD:
                    return
        raise TimeoutError("nobody opened the fake board's port")

    def send(self, data: bytes, timeout: float = 20.0) -> None:
        view, deadline = memoryview(data), time.monotonic() + timeout
        while view and not self.stopping.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError("the reader stopped taking the fake board's bytes")
            if select.select([], [self.master], [], 0.05)[1]:
                try:
                    view = view[os.write(self.master, view[:4096]) :]
                except BlockingIOError:
                    pass

    def send_lines(self, lines: list[bytes], rate: float = 0.0) -> None:
        """Write ``lines`` at ``rate`` lines per second (0: as fast as the reader takes them)."""
        if rate <= 0:
            self.send(b"".join(line + b"\n" for line in lines))
            return
        start = time.monotonic()
        for i in range(0, len(lines), 10):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            self.send(b"".join(line + b"\n" for line in lines[i : i + 10]))

    def drain(self, timeout: float = 20.0) -> None:
        """Until the reader has taken every byte written (the slave's input queue empty twice in a row,
        as the kernel moves written bytes into it a little later), and had time to process them."""
        deadline, empty = time.monotonic() + timeout, 0
        while empty < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the reader did not take the fake board's bytes")
            time.sleep(0.05)
            queued = struct.unpack("i", fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0"))[0]
            empty = 0 if queued else empty + 1
        time.sleep(0.2)

    def play(self, lines: list[bytes], rate: float = 0.0, unplug_after: bytes | None = None) -> None:
        """In a thread: wait for the port to open, write ``lines``; with ``unplug_after``, write those
        bytes too and then close the master (the board unplugged)."""

        def run() -> None:
            try:
                self.wait_open()
                self.send_lines(lines, rate)
                if unplug_after is not None:
                    self.send(unplug_after)
                    self.drain()
                    self.unplug()
            except BaseException as error:  # reported by close()
                self.error = error

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def unplug(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(30)
        self.unplug()
        os.close(self.slave)
        os.unlink(self.port)
        if self.error is not None:
            raise self.error


@pytest.fixture
def fake_board(tmp_path: Path):
    board = FakeBoard(tmp_path)
    yield board
    board.close()


def subject2(n: int | None = None):
    rec = load_hapt([2])[0]
    return rec if n is None else replace(rec, samples=rec.samples[:n], labels=rec.labels[:n])


def run_capture(port: str, out: Path, **options) -> tuple[object, str]:
    """capture() in this process, quiet (no terminal): the result and its status text."""
    status = io.StringIO()
    result = capture(port, out, keyboard=io.StringIO(), status=status, **options)
    return result, status.getvalue()


def harlite(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harlite", *args], cwd=REPO, text=True, **popen)


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = harlite(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def rows_of(path: Path) -> list[list[str]]:
    """A recording's rows after the header, as text fields."""
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


def assert_one_line_error(done: subprocess.CompletedProcess, *words: str, alone: bool = True) -> None:
    """Exit 2 and one line 'Error: ...' with ``words`` on stderr: the only one if ``alone``, else the last
    (after status lines, or Click's usage)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and (not alone or len(lines) == 1), done.stderr
    assert lines[-1].startswith("Error: ") and all(word in lines[-1] for word in words), done.stderr


def assert_exact_samples(path: Path, raw: np.ndarray) -> None:
    """read_csv gives the board's float32 values back: exactly from 2^-6 up, within 1e-9 below."""
    rec = read_csv(path)
    assert rec.rate == 50.0 and rec.samples.shape == raw.shape
    exact = np.abs(raw) >= 2.0**-6
    np.testing.assert_array_equal(rec.samples[exact], raw[exact])
    np.testing.assert_allclose(rec.samples, raw, rtol=0, atol=1e-9)


def no_temporary_files(out: Path) -> bool:
    return not [p for p in out.rglob("*") if p.name.startswith(".")]


# ---- the banner ------------------------------------------------------------------------------------


def test_banner_is_the_c_cores_and_parses(board: Path, own_board: Path) -> None:
    """The banner the C core formats names the config's sensors, rate, window, hop and labels; label
    names with spaces and a fractional rate come back from parse_banner."""
    manifest = load_bundle(RELEASED).manifest
    lines = board_lines(board, np.zeros((3, 6), np.float32))
    assert lines[1] == b"time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z"
    assert parse_banner(lines[0].decode()) == {
        "format": "1", "firmware": "test_core", "imu": "none", "sensors": "acc,gyro", "rate_hz": "50",
        "window": "128", "hop": "64", "labels": ",".join(manifest["labels"]),
    }  # fmt: skip
    banner = parse_banner(board_lines(own_board, np.zeros((3, 6), np.float32))[0].decode())
    assert banner["rate_hz"] == "12.5" and banner["window"] == "128"
    assert banner["labels"].split(",") == OWN_LABELS
    assert parse_banner("# harlite_har: BMI270, model 21904 bytes") == {}


# ---- recording -------------------------------------------------------------------------------------


def test_captured_recording_equals_the_replayed_samples(board: Path, fake_board: FakeBoard, tmp_path: Path) -> None:
    """Six minutes of HAPT subject 2, written as fast as capture takes them: one recording whose rows are
    the board's rows (plus the label) and whose values read back as the board's float32 samples."""
    rec = subject2()
    lines = board_lines(board, rec.samples, rec.labels)
    fake_board.play(lines)
    t0 = time.monotonic()
    result, status = run_capture(fake_board.port, tmp_path / "data", label="WALKING", subject="alice",
                                 seconds=len(rec) / 50)  # fmt: skip
    seconds = time.monotonic() - t0
    assert (result.stopped, result.error, result.lost_samples, result.garbled_lines) == ("seconds", None, 0, 0)
    assert result.samples == len(rec) == 18026 and result.labels == {"WALKING": len(rec)}
    [path] = result.files
    assert path.parent == tmp_path / "data" / "alice" and re.fullmatch(r"WALKING-\d{8}-\d{6}\.csv", path.name)
    rows = rows_of(path)
    assert [",".join(r[:-1]).encode() for r in rows] == sample_rows(lines)
    assert {r[-1] for r in rows} == {"WALKING"}
    assert_exact_samples(path, rec.samples)
    assert no_temporary_files(tmp_path / "data")
    assert result.board.to_dict()["sensors"] == "acc,gyro" and result.board.rate_hz == 50.0
    assert "samples/s" in status
    print(f"\ncapture: {len(lines)} lines ({path.stat().st_size} bytes) in {seconds:.2f} s through a pty: "
          f"{len(lines) / seconds:.0f} lines/s, {len(rec) / seconds / 50:.0f}x a 50 Hz board")  # fmt: skip


def test_gaps_and_garbled_lines_are_counted_and_split(board: Path, fake_board: FakeBoard, tmp_path: Path) -> None:
    """A '# gap' of the board (25 samples), a sample line cut short, one lost on the wire and one with
    bytes that are not text: each is counted and starts a new recording; every piece is exact."""
    rec = subject2(3000)
    lines = board_lines(board, rec.samples, rec.labels, gaps=("1000:25",))
    assert b"# gap: 25 samples lost, the stream restarts" in lines
    rows = sample_rows(lines)
    index = {row: i for i, row in enumerate(lines)}
    cut, lost, binary = rows[400], rows[1500], rows[2200]  # row numbers after the gap: samples + 25
    lines[index[cut]] = cut[:37]
    lines[index[binary]] = binary[:20] + b"\xff\xfe" + binary[22:]
    del lines[index[lost]]
    fake_board.play(lines)
    result, _ = run_capture(fake_board.port, tmp_path / "data", label="SITTING", seconds=3000 / 50)
    assert result.stopped == "seconds" and result.board_gaps == 1
    assert (result.lost_samples, result.garbled_lines) == (25 + 3, 2)
    # pieces of samples: [0, 400) [401, 1000) gap [1025, 1525) [1526, 2225) [2226, 3000)
    pieces = [(0, 400), (401, 1000), (1025, 1525), (1526, 2225), (2226, 3000)]
    assert len(result.files) == len(pieces) and result.samples == sum(b - a for a, b in pieces)
    for path, (a, b) in zip(result.files, pieces):
        assert_exact_samples(path, rec.samples[a:b])
    assert no_temporary_files(tmp_path / "data")


def test_board_without_banner(board: Path, fake_board: FakeBoard, tmp_path: Path) -> None:
    """A device that prints harlite's CSV but no banner: the rate comes from time_s; nothing is lost."""
    rec = subject2(1000)
    lines = board_lines(board, rec.samples)[1:]
    assert lines[0].startswith(b"time_s,")
    fake_board.play(lines)
    result, _ = run_capture(fake_board.port, tmp_path / "data", label="WALKING", seconds=20)
    assert result.board.banner == {} and result.board.rate_hz == 50.0 and result.samples == 1000
    assert_exact_samples(result.files[0], rec.samples)


def test_board_restarts(board: Path, own_board: Path, fake_board: FakeBoard, tmp_path: Path) -> None:
    """The board starts again (banner, header, time from 0): a new recording; a board that comes back
    at another rate ends the capture with an error, the recordings so far kept."""
    rec = subject2(600)
    first = board_lines(board, rec.samples[:300])
    fake_board.play(first + board_lines(board, rec.samples[300:]) + board_lines(own_board, rec.samples[:50]))
    result, _ = run_capture(fake_board.port, tmp_path / "data", label="WALKING")
    assert (result.stopped, result.restarts, result.lost_samples, len(result.files)) == ("changed", 1, 0, 2)
    assert "another rate" in result.error
    for path, part in zip(result.files, (rec.samples[:300], rec.samples[300:])):
        assert_exact_samples(path, part)


def test_never_overwrites_a_recording(tmp_path: Path) -> None:
    """A recording whose name is taken (same label, same second) gets the next free name."""
    segment = RecordingFile(tmp_path, "walk", "time_s,acc_x,acc_y,acc_z")
    segment.write(["0.000000,1,2,3,walk\n", "0.020000,1,2,3,walk\n"], Counter(walk=2))
    taken = tmp_path / f"{segment.stem}.csv"
    taken.write_text("mine\n")
    path = segment.close()
    assert path == tmp_path / f"{segment.stem}-2.csv" and taken.read_text() == "mine\n"
    assert path.read_text().splitlines() == ["time_s,acc_x,acc_y,acc_z,label", "0.000000,1,2,3,walk",
                                             "0.020000,1,2,3,walk"]  # fmt: skip
    assert no_temporary_files(tmp_path)


def interrupted_capture(port: str, label: str, out: Path, board_side: Callable[[], None]) -> dict:
    """``harlite capture --json`` in a process of its own, Ctrl-C (SIGINT) once ``board_side()`` is done:
    it must exit 0; returns its JSON result."""
    proc = harlite("capture", "--port", port, "--label", label, "--out", str(out), "--json",
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        board_side()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    return json.loads(stdout)


def test_sigint_keeps_every_complete_sample(board: Path, fake_board: FakeBoard, tmp_path: Path) -> None:
    """Ctrl-C while a line is half sent: the process ends cleanly (exit 0) with one complete recording
    holding every complete sample, no torn row and no temporary file."""
    rec = subject2(1500)
    lines = board_lines(board, rec.samples, rec.labels)

    def board_side() -> None:
        fake_board.wait_open()
        fake_board.send_lines(lines[:900], rate=1000)
        fake_board.send(lines[900][:40])  # half a line
        fake_board.drain()

    result = interrupted_capture(fake_board.port, "STANDING", tmp_path / "data", board_side)
    complete = sample_rows(lines[:900])
    assert result["stopped"] == "interrupted" and result["samples"] == len(complete)
    [path] = map(Path, result["files"])
    assert [",".join(r[:-1]).encode() for r in rows_of(path)] == complete
    assert_exact_samples(path, rec.samples[: len(complete)])
    assert no_temporary_files(tmp_path / "data")


def test_sigint_while_streaming_leaves_valid_files(board: Path, fake_board: FakeBoard, tmp_path: Path) -> None:
    """Ctrl-C while the board streams: a valid recording of the samples from the first one on."""
    rec = subject2(6000)
    lines = board_lines(board, rec.samples)

    def board_side() -> None:  # once capture has opened the port (start-up may be slow), a second of streaming
        fake_board.wait_open()
        fake_board.thread = threading.Thread(target=fake_board.send_lines, args=(lines, 2000), daemon=True)
        fake_board.thread.start()
        time.sleep(1.0)

    result = interrupted_capture(fake_board.port, "LAYING", tmp_path / "data", board_side)
    [path] = map(Path, result["files"])
    n = result["samples"]
    assert result["stopped"] == "interrupted" and 200 < n < len(rec) and len(rows_of(path)) == n
    assert_exact_samples(path, rec.samples[:n])
    assert no_temporary_files(tmp_path / "data")


def test_unplugged_board_keeps_its_samples(board: Path, fake_board: FakeBoard, tmp_path: Path) -> None:
    """The board goes away mid-line: exit 2 with one line saying so; the complete samples are kept."""
    rec = subject2(700)
    lines = board_lines(board, rec.samples, rec.labels)
    fake_board.play(lines[:600], unplug_after=lines[600][:30])
    done = cli("capture", "--port", fake_board.port, "--label", "WALKING", "--out", str(tmp_path / "data"))
    kept = len(sample_rows(lines[:600]))
    assert_one_line_error(done, "went away", f"kept {kept} samples in 1 recording, 1 garbled lines", alone=False)
    [path] = (tmp_path / "data" / "subject1").glob("*.csv")
    assert done.stdout.strip() == str(path)
    assert_exact_samples(path, rec.samples[:kept])
    assert no_temporary_files(tmp_path / "data")


# ---- labels switched by key presses ----------------------------------------------------------------


def test_keys_switch_the_label_per_sample(board: Path, fake_board: FakeBoard, tmp_path: Path) -> None:
    """On a terminal (stdin and stderr on a second pty): 2, 0 and 3 switch the label between bursts of
    samples, q stops; each sample carries the label in force when it arrived, in one recording; the
    status line is redrawn with carriage returns and shows the board's prediction."""
    rec = subject2(1600)
    lines = board_lines(board, rec.samples, rec.labels)
    rows = sample_rows(lines)
    bursts = [lines[: lines.index(rows[400])], lines[lines.index(rows[400]) : lines.index(rows[800])],
              lines[lines.index(rows[800]) : lines.index(rows[1200])], lines[lines.index(rows[1200]) :]]  # fmt: skip
    term_master, term_slave = os.openpty()
    screen = bytearray()

    def read_screen() -> None:
        while True:
            try:
                data = os.read(term_master, 4096)
            except OSError:
                return
            if not data:
                return
            screen.extend(data)

    reader = threading.Thread(target=read_screen, daemon=True)
    reader.start()

    def wait_screen(text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in screen:
            assert time.monotonic() < deadline, f"{text!r} not on the terminal: {bytes(screen)[-500:]!r}"
            time.sleep(0.02)

    out = tmp_path / "data"
    proc = harlite("capture", "--port", fake_board.port, "--labels", "WALKING,SITTING,LAYING", "--label", "WALKING",
                   "--out", str(out), "--subject", "bob", "--json",
                   stdin=term_slave, stderr=term_slave, stdout=subprocess.PIPE)  # fmt: skip
    try:
        fake_board.wait_open()
        for burst, key, shown in zip(bursts, ["2", "0", "3", "q"], ["SITTING", "(none)", "LAYING", None]):
            fake_board.send_lines(burst)
            fake_board.drain()
            os.write(term_master, key.encode())
            if shown:
                wait_screen(f"capture: label {shown} from")
        stdout, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        os.close(term_slave)
        reader.join(5)
        os.close(term_master)
    assert proc.returncode == 0, bytes(screen).decode(errors="replace")
    result = json.loads(stdout)
    assert result["stopped"] == "key"
    [path] = map(Path, result["files"])
    labels = [r[-1] for r in rows_of(path)]
    assert labels == ["WALKING"] * 400 + ["SITTING"] * 400 + [""] * 400 + ["LAYING"] * 400
    assert result["labels"] == {"": 400, "LAYING": 400, "SITTING": 400, "WALKING": 400}
    names = read_csv(path).label_names  # the CSV reader sees the same labels
    assert names == labels
    text = bytes(screen).decode(errors="replace")
    assert re.search(r"\r\s*\d+\.\d s\s+\d+\.\d/50 samples/s  label \S+  board \S+ \(\d\.\d{3}\)", text), text[-800:]
    assert "1=WALKING 2=SITTING 3=LAYING 0=none q=stop" in text


# ---- clear errors ----------------------------------------------------------------------------------


def test_missing_port(tmp_path: Path) -> None:
    done = cli("capture", "--port", str(tmp_path / "ttyNONE"), "--label", "walk", "--out", str(tmp_path / "d"))
    assert_one_line_error(done, "does not exist", "--list-ports")


def test_busy_port(fake_board: FakeBoard, tmp_path: Path) -> None:
    """Another program holds the port exclusively (pyserial's lock, as another capture takes it)."""
    holder = os.open(fake_board.port, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = cli("capture", "--port", fake_board.port, "--label", "walk", "--out", str(tmp_path / "d"))
    finally:
        os.close(holder)
    assert_one_line_error(done, "is busy")


@pytest.mark.parametrize(
    ("talk", "words"),
    [
        (b"", ("no data from", "harlite board")),
        (b"hello from a GPS module\r\n$GPGGA,123519,4807.038,N\r\n" * 20, ("no harlite CSV header", "GPS")),
        (
            bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)),
            ("garbage at 115200 baud", "wrong baud"),
        ),
        (b"# error: IMU.begin() failed: is HARLITE_IMU_BMI270 right?\r\n" * 3, ("failed to start", "IMU.begin()")),
    ],
    ids=["silent", "not-harlite", "wrong-baud", "board-error"],
)
def test_not_a_harlite_board(fake_board: FakeBoard, tmp_path: Path, talk: bytes, words: tuple[str, ...]) -> None:
    fake_board.play([talk] if talk else [])
    done = cli("capture", "--port", fake_board.port, "--label", "walk", "--out", str(tmp_path / "d"), "--wait", "1.5")
    assert_one_line_error(done, *words)
    assert not (tmp_path / "d").exists()


def test_board_that_stops_sending_samples(board: Path, fake_board: FakeBoard, tmp_path: Path) -> None:
    """A sketch built with HARLITE_PRINT_SAMPLES 0 prints its header, then predictions only: exit 2."""
    rec = subject2(2000)
    fake_board.play([line for line in board_lines(board, rec.samples, rec.labels) if line.startswith((b"#", b"t"))])
    done = cli("capture", "--port", fake_board.port, "--label", "walk", "--out", str(tmp_path / "d"), "--wait", "1")
    assert_one_line_error(done, "sent no sample for 1 s", "HARLITE_PRINT_SAMPLES 0", "kept 0 samples", alone=False)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("existing", "words"),
    [
        (
            "time_s,acc_x,acc_y,acc_z,label\n" + "".join(f"{i / 50:.6f},0,0,1,sit\n" for i in range(60)),
            ("holds acc at 50 Hz",),
        ),
        (
            "time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n"
            + "".join(f"{i / 100:.6f},0,0,1,0,0,0\n" for i in range(60)),
            ("holds acc,gyro at 100 Hz", "samples acc,gyro at 50 Hz"),
        ),
    ],
    ids=["acc-only-dataset", "100hz-dataset"],
)
def test_board_must_match_the_dataset(board: Path, fake_board: FakeBoard, tmp_path: Path, existing: str,
                                      words: tuple[str, ...]) -> None:  # fmt: skip
    out = tmp_path / "data"
    (out / "carol").mkdir(parents=True)
    (out / "carol" / "sit-1.csv").write_text(existing)
    fake_board.play(board_lines(board, subject2(200).samples))
    done = cli("capture", "--port", fake_board.port, "--label", "walk", "--out", str(out))
    assert_one_line_error(done, "sit-1.csv", *words)
    assert sorted(p.name for p in out.rglob("*")) == ["carol", "sit-1.csv"]


def test_list_ports_and_usage() -> None:
    done = cli("capture", "--list-ports", "--json")
    assert done.returncode == 0 and isinstance(json.loads(done.stdout), list)
    assert_one_line_error(cli("capture", "--label", "walk"), "--port", alone=False)
    assert_one_line_error(cli("capture", "--port", "/dev/null", "--out", "x"), "--label", alone=False)
    assert_one_line_error(cli("capture", "--port", "/dev/null", "--out", "x", "--label", "a,b"), "label 'a,b'")
    assert_one_line_error(cli("capture", "--port", "/dev/null", "--out", "x", "--label", "a", "--subject", "../up"),
                          "subject '../up'")  # fmt: skip
    assert "q stops" in cli("capture", "--help").stdout


# ---- accelerometer-only boards and the whole loop (issue 12) ---------------------------------------


def acc_only_manifest() -> dict:
    """The released manifest cut to an accelerometer-only front end (body and total acceleration)."""
    manifest = load_bundle(RELEASED).manifest
    keep = [i for i, c in enumerate(manifest["frontend"]["channels"]) if "acc" in c]
    channels = [manifest["frontend"]["channels"][i] for i in keep]
    raw = [{"name": n, "unit": "g"} for n in ("acc_x", "acc_y", "acc_z")]
    return {**manifest, "raw_channels": raw,
            "frontend": {**manifest["frontend"], "channels": channels, "raw_channels": [r["name"] for r in raw],
                         "units": ["g"] * len(keep)},
            "normalization": {k: [v[i] for i in keep] for k, v in manifest["normalization"].items() if k in ("mean", "std")}}  # fmt: skip


def test_accelerometer_only_board(fake_board: FakeBoard, tmp_path: Path) -> None:
    """A board of 3 raw channels: its header and banner say acc, and capture records 3 columns."""
    config = write_config(tmp_path / "acc", acc_only_manifest())
    assert "#define HARLITE_NUM_RAW 3" in (config / "harlite_model_config.h").read_text()
    program = build_board(config)
    acc = subject2(1000).samples[:, :3]
    lines = board_lines(program, acc)
    assert lines[1] == b"time_s,acc_x,acc_y,acc_z" and parse_banner(lines[0].decode())["sensors"] == "acc"
    fake_board.play(lines)
    result, _ = run_capture(fake_board.port, tmp_path / "data", label="walk", seconds=20)
    [path] = result.files
    assert path.read_text().splitlines()[0] == "time_s,acc_x,acc_y,acc_z,label"
    assert [",".join(r[:-1]).encode() for r in rows_of(path)] == sample_rows(lines)


HAPT_TO_OWN = {"WALKING": "walk", "SITTING": "sit", "LAYING": "lie"}


def label_runs(labels: np.ndarray, name: str, longest: int = 2) -> list[tuple[int, int]]:
    """The ``longest`` longest runs of the activity ``name`` in a HAPT recording, as (start, stop)."""
    k = LABELS.index(name)
    edges = np.flatnonzero(np.diff(np.r_[0, (labels == k).astype(np.int8), 0]))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
    return sorted(runs, key=lambda r: r[0] - r[1])[:longest]


@pytest.mark.slow
def test_captured_dataset_builds(board: Path, tmp_path: Path) -> None:
    """The loop: HAPT walking, sitting and lying of three subjects replayed by the fake board and
    captured with labels of our own, then ``harlite build --data`` of that folder."""
    out = tmp_path / "data"
    for subject in (1, 3, 6):
        rec = load_hapt([subject])[0]
        for hapt, own in HAPT_TO_OWN.items():
            for a, b in label_runs(rec.labels, hapt):
                board_link = FakeBoard(tmp_path)
                try:
                    board_link.play(board_lines(board, rec.samples[a:b]))
                    result, _ = run_capture(
                        board_link.port, out, label=own, subject=f"s{subject}", seconds=(b - a) / 50
                    )
                finally:
                    board_link.close()
                assert result.samples == b - a and result.lost_samples == 0
    assert sorted(p.name for p in out.iterdir()) == ["s1", "s3", "s6"]
    done = cli("build", "--data", str(out), "--quick", "--out", str(tmp_path / "run"), "--json", timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    [manifest] = (tmp_path / "run").rglob("manifest.json")
    assert set(json.loads(manifest.read_text())["labels"]) == set(HAPT_TO_OWN.values())


# ---- issue 22: stopping signals, a full disk, banners and clocks no board has, UTF-8, escapes, device files

HEADER = b"time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z"


def banner(rate: str = "50", labels: str = "walk,sit") -> bytes:
    return f"# harlite format=1 firmware=test rate_hz={rate} sensors=acc,gyro labels={labels}".encode()


def rows(n: int, scale: float = 1.0, fmt: str = "{:.6f}") -> list[bytes]:
    """Sample rows of a 50 Hz board; ``scale`` and ``fmt`` write time_s in another unit."""
    return [f"{fmt.format(i / 50 * scale)},0.0{i % 7}0000000,0.020000000,0.980000000,0.100000000,-0.200000000,"
            f"0.300000000".encode() for i in range(n)]  # fmt: skip


@pytest.mark.parametrize(("name", "reason"), [("SIGTERM", "terminated"), ("SIGHUP", "hung up"), ("SIGQUIT", "quit")])
def test_sigterm_and_sighup_keep_every_complete_sample(board: Path, fake_board: FakeBoard, tmp_path: Path, name: str,
                                                       reason: str) -> None:  # fmt: skip
    """Killed politely (SIGTERM) or its terminal closed (SIGHUP) while a line is half sent: every complete
    sample in a file renamed into place, its path printed."""
    rec = subject2(1200)
    lines = board_lines(board, rec.samples, rec.labels)
    proc = harlite("capture", "--port", fake_board.port, "--label", "walk", "--out", str(tmp_path / "data"), "--json",
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        fake_board.wait_open()
        fake_board.send_lines(lines[:700], rate=1000)
        fake_board.send(lines[700][:40])
        fake_board.drain()
        proc.send_signal(getattr(signal, name))
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    result = json.loads(stdout)
    complete = sample_rows(lines[:700])
    assert result["stopped"] == reason and result["samples"] == len(complete)
    [path] = map(Path, result["files"])
    assert path.is_file() and not path.name.startswith(".")
    assert [",".join(r[:-1]).encode() for r in rows_of(path)] == complete
    assert no_temporary_files(tmp_path / "data")


class _FullDisk:
    """``os`` for recording_files, whose ``write`` fails with ENOSPC once ``room`` bytes are written."""

    def __init__(self, room: int) -> None:
        self.room = room

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def write(self, fd: int, data: memoryview) -> int:
        if len(data) > self.room:
            written = os.write(fd, data[: self.room])  # a partial write, as a filling disk gives
            self.room = 0
            if written:
                return written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return os.write(fd, data)


def test_a_full_disk_keeps_every_complete_sample_and_names_the_file(board: Path, fake_board: FakeBoard,
                                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    rec = subject2(2000)
    lines = board_lines(board, rec.samples)
    monkeypatch.setattr(recording_files, "os", _FullDisk(30_000))
    fake_board.play(lines)
    result, _ = run_capture(fake_board.port, tmp_path / "data", label="walk", seconds=40)
    [path] = result.files
    assert result.stopped == "disk full" and str(path) in result.error and "No space left" in result.error
    kept = rows_of(path)
    assert 100 < len(kept) == result.samples < 2000 and path.stat().st_size <= 30_000
    assert_exact_samples(path, rec.samples[: len(kept)])
    assert no_temporary_files(tmp_path / "data")


def test_a_write_error_from_the_kernel_ends_the_capture_in_one_line(board: Path, fake_board: FakeBoard,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    """A real failing write (the file size limit, as a full disk fails a write): exit 2, one line naming the
    file that holds the samples before it."""
    lines = board_lines(board, subject2(3000).samples)
    fake_board.play(lines)

    def limit() -> None:  # capture itself ignores SIGXFSZ, so the write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    proc = harlite("capture", "--port", fake_board.port, "--label", "walk", "--out", str(tmp_path / "data"),
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit)  # fmt: skip
    stdout, stderr = proc.communicate(timeout=60)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    [path] = (tmp_path / "data" / "subject1").glob("*.csv")
    assert_one_line_error(done, "File too large", str(path), alone=False)
    assert stdout.strip() == str(path) and 100 < len(rows_of(path)) < 3000
    assert no_temporary_files(tmp_path / "data")


@pytest.mark.parametrize("rate", ["0", "nan", "inf", "-50", "1e-300", "1e300"])
def test_a_banner_rate_no_board_has_is_one_line(fake_board: FakeBoard, tmp_path: Path, rate: str) -> None:
    fake_board.play([banner(rate), HEADER, *rows(200)])
    done = cli("capture", "--port", fake_board.port, "--label", "walk", "--out", str(tmp_path / "d"), "--seconds", "2")
    assert_one_line_error(done, f"rate_hz={rate}", "1 to 5000 Hz")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(("scale", "fmt"), [(1e3, "{:.0f}"), (1e6, "{:.0f}")])
def test_a_device_printing_milliseconds_or_microseconds_loses_nothing(fake_board: FakeBoard, tmp_path: Path,
                                                                     scale: float, fmt: str) -> None:  # fmt: skip
    fake_board.play([HEADER, *rows(300, scale, fmt)])
    result, _ = run_capture(fake_board.port, tmp_path / "data", label="walk", seconds=5)
    assert result.board.rate_hz == 50.0 and result.samples == 250 and result.lost_samples == 0
    [path] = result.files
    assert [r[0] for r in rows_of(path)[:3]] == ["0.000000", "0.020000", "0.040000"]


def test_utf8_labels_and_escape_sequences_from_the_board(fake_board: FakeBoard, tmp_path: Path) -> None:
    lines = [banner(labels="Zähne putzen,gehen"), HEADER, *rows(200)]
    lines.insert(40, "# pred,pred=Zähne putzen,pred_smoothed=Zähne putzen,p=0.900".encode())
    lines.insert(60, b"# error: \x1b]0;owned\x07\x1b[2J\xc2\x9b31m\xe2\x80\xaeevil")
    fake_board.play(lines)
    result, status = run_capture(fake_board.port, tmp_path / "data", label="Zähne putzen", seconds=3)
    assert result.board.to_dict()["labels"] == ["Zähne putzen", "gehen"] and result.garbled_lines == 0
    assert "board Zähne putzen (0.900)" in status and result.labels == {"Zähne putzen": 150}
    assert "\\x1b]0;owned\\x07\\x1b[2J" in status and "\\u202e" in status
    assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in status)


def test_device_files_in_the_dataset_folder_are_passed_over(fake_board: FakeBoard, tmp_path: Path) -> None:
    """A FIFO and a /dev/zero link named .csv where capture appends: no hang, no gigabytes read."""
    folder = tmp_path / "data" / "bob"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe.csv")
    (folder / "zero.csv").symlink_to("/dev/zero")
    fake_board.play([banner(), HEADER, *rows(200)])
    done = cli("capture", "--port", fake_board.port, "--label", "walk", "--out", str(tmp_path / "data"),
               "--seconds", "2", timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "data" / "subject1").glob("*.csv"))) == 1


def test_a_segment_cut_by_a_full_disk_holds_whole_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    segment = RecordingFile(tmp_path, "walk", "time_s,acc_x,acc_y,acc_z")
    segment.write(["0.000000,1,2,3,walk\n", "0.020000,1,2,3,walk\n"], Counter(walk=2))
    monkeypatch.setattr(recording_files, "os", _FullDisk(7))
    with pytest.raises(OSError, match="No space left"):
        segment.write(["0.040000,1,2,3,walk\n"], Counter(walk=1))
    monkeypatch.undo()
    path = segment.close()
    assert path.read_text().splitlines()[1:] == ["0.000000,1,2,3,walk", "0.020000,1,2,3,walk"]
    assert np.array_equal(segment.samples, 2)

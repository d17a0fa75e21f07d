"""Session fixtures of the firmware tests: a tiny bundle of labels of its own on accelerometer-only data,
and replays of a real recording: the recording as a CSV file and ``harlite simulate --runtime c`` on it,
which the firmware's '# pred' lines (on the host, on each emulated core, from an export) must equal.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures_bundle import OPTIONS
from tools import tool

from harlite.board.toolchain import CORES
from harlite.bundle.loader import load_bundle
from harlite.cli import main
from harlite.core.frontend import ACC
from harlite.data.hapt import load_hapt
from harlite.data.recordings import Recording, read_csv, write_csv
from harlite.data.windows import DataSpec, load_split
from harlite.pipeline.bench_firmware import measure_cores
from harlite.pipeline.convert import convert
from harlite.pipeline.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
RELEASED = REPO / "models" / "cnn_lstm"
SAMPLES = 18000  # six minutes at 50 Hz
# The own-label, accelerometer-only dataset: HAPT recordings without the gyroscope, activities renamed.
OWN_SUBJECTS, OWN_TEST = ("1", "3", "5", "2"), "2"
OWN_MERGE = {"WALKING": "walk", "WALKING_UPSTAIRS": "Treppe (\u2191\u2193)", "WALKING_DOWNSTAIRS": "Treppe (\u2191\u2193)",
             "SITTING": "sit or stand", "STANDING": "sit or stand", "LAYING": "lie down"}  # fmt: skip
OWN_LABELS = ["walk", "Treppe (\u2191\u2193)", "sit or stand", "lie down"]


def first_minutes(rec: Recording, n: int = SAMPLES) -> Recording:
    return replace(rec, samples=rec.samples[:n], labels=None if rec.labels is None else rec.labels[:n])


@pytest.fixture(scope="session")
def own_bundle(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> Path:
    """A tiny bundle of labels of its own on accelerometer-only data: a dataset folder of four HAPT
    subjects' recordings without the gyroscope, the six activities merged into four names of its own
    (dataset.json), trained for two epochs and converted as ``harlite convert`` does (TFLM and C engine)."""
    root = tmp_path_factory.mktemp("own")
    data = root / "data"
    for rec in load_hapt(OWN_SUBJECTS):
        write_csv(rec.with_raw_channels(ACC), data / rec.subject / f"{rec.source.split(':')[-1]}.csv")
    (data / "dataset.json").write_text(json.dumps({"labels": OWN_LABELS, "merge": OWN_MERGE}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(_session_cache))
        split = load_split(DataSpec(data=str(data), test_subjects=(OWN_TEST,), val_subjects=1))
        metrics = train(root / "run", TrainConfig(epochs=2, options=dict(OPTIONS)), split=split)
        convert(root / "run", root / "bundle", calibration=200, split=split)
    counts = {name: int(n) for name, n in zip(OWN_LABELS, np.bincount(split.pool.y, minlength=len(OWN_LABELS)))}
    print(
        f"\nown-label acc-only bundle: training windows per class {counts}, test accuracy "
        f"{metrics['test']['float']['accuracy']:.3f} (float, two epochs)"
    )
    return root / "bundle"


def own_recording(bundle: Path) -> Recording:
    """The own dataset's first recording of its test subject, as a user's CSV reads back."""
    folder = Path(load_bundle(bundle).manifest["dataset"]["data"]) / OWN_TEST
    return read_csv(sorted(folder.glob("*.csv"))[0])


def replay(bundle: Path, rec: Recording, root: Path, cache: Path) -> dict:
    """``rec`` as a CSV file, the samples the board gets from it, and ``harlite simulate BUNDLE REC.csv
    --runtime c --smoothing majority:3`` (the firmware's smoothing) on it."""
    csv = write_csv(first_minutes(rec), root / "rec.csv")
    out = root / "sim"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(cache))
        done = CliRunner().invoke(main, ["simulate", str(bundle), str(csv), "--runtime", "c", "--smoothing",
                                         "majority:3", "--out", str(out)])  # fmt: skip
    assert done.exit_code == 0, done.output
    return {"bundle": bundle, "csv": csv, "raw": read_csv(csv).samples, "timeline": out / "timeline.json"}


@pytest.fixture(scope="session")
def released_replay(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> dict:
    """The released bundle on six minutes of HAPT test subject 2 (see ``replay``)."""
    return replay(RELEASED, load_hapt(["2"])[0], tmp_path_factory.mktemp("released_replay"), _session_cache)


@pytest.fixture(scope="session")
def own_replay(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path, own_bundle: Path) -> dict:
    """The own-label accelerometer-only bundle on its test subject's first recording (see ``replay``)."""
    return replay(own_bundle, own_recording(own_bundle), tmp_path_factory.mktemp("own_replay"), _session_cache)


@pytest.fixture(scope="session")
def core_runs(released_replay: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The released model's per-sample path on every core of ``CORES`` on six minutes of HAPT test subject 2,
    measured as ``harlite bench firmware`` measures it (``measure_cores``), its images kept in ``work``."""
    for name in {"qemu-system-arm", "qemu-system-riscv32", *(c.prefix + "gcc" for c in CORES.values())}:
        tool(name)
    work = tmp_path_factory.mktemp("cores")
    return {"work": work, "runs": measure_cores(load_bundle(RELEASED), released_replay["raw"], work)}


def pred_fields(line: str) -> dict[str, str]:
    assert line.startswith("# pred,"), line
    return dict(kv.split("=", 1) for kv in line[len("# pred,") :].split(","))


def assert_pred_lines_equal_timeline(lines: list[str], timeline: Path) -> None:
    """Every '# pred' line carries the simulator's window: start_s and end_s (the board prints 6 decimals,
    the timeline 4), pred_raw, pred_smoothed, and p: the top class's probability to 3 decimals."""
    rows = json.loads(timeline.read_text())["rows"]
    assert len(lines) == len(rows) > 0
    for i, (line, row) in enumerate(zip(lines, rows)):
        board = pred_fields(line)
        want = {"start_s": row["start_s"], "end_s": row["end_s"], "pred_raw": row["pred_raw"],
                "pred_smoothed": row["pred_smoothed"], "p": f"{row['p_' + row['pred_raw']]:.3f}"}  # fmt: skip
        got = {"start_s": round(float(board["start_s"]), 4), "end_s": round(float(board["end_s"]), 4),
               "pred_raw": board["pred_raw"], "pred_smoothed": board["pred_smoothed"], "p": board["p"]}  # fmt: skip
        assert got == want, f"window {i}: {line}"


# What the Arduino Mbed OS Nano Boards core (4.6.0, variants/ARDUINO_NANO33BLE/cflags.txt) compiles C with.
NANO33BLE_CFLAGS = ["-std=gnu11", "-Os", "-Wall", "-Wextra", "-fdata-sections", "-ffunction-sections",
                    "-funsigned-char", "-mcpu=cortex-m4", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16",
                    "-mthumb"]  # fmt: skip

# Declarations of what the sketch uses from the Arduino core, mbed and the IMU libraries (none is
# installable here): enough for the compiler to check the sketch's own code and its use of the pipeline.
SKETCH_STUBS = {
    "Arduino.h": """#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>
#define LED_BUILTIN 13
#define HIGH 1
#define LOW 0
#define OUTPUT 1
unsigned long micros(void);
unsigned long millis(void);
void delay(unsigned long ms);
void pinMode(int pin, int mode);
void digitalWrite(int pin, int value);
struct SerialStub {
  void begin(unsigned long baud);
  bool connected();
  explicit operator bool();
  void print(const char* text);
  void print(unsigned long value);
  void println(const char* text = "");
};
extern SerialStub Serial;
""",
    "mbed.h": """#pragma once
#include <stdint.h>
enum { osPriorityBelowNormal = 16 };
namespace rtos {
struct Thread { Thread(int priority, uint32_t stack_size); void start(void (*task)()); };
struct Semaphore { explicit Semaphore(int count); void acquire(); void release(); };
}  // namespace rtos
""",
    "imu.h": """#pragma once
struct ImuStub {
  int begin();
  int readAcceleration(float& x, float& y, float& z);
  int readGyroscope(float& x, float& y, float& z);
};
extern ImuStub IMU;
""",
}


def write_stubs(folder: Path) -> Path:
    """SKETCH_STUBS in ``folder``, the IMU header under both IMU libraries' names."""
    for name, text in SKETCH_STUBS.items():
        (folder / name).write_text(text)
    for name in ("Arduino_BMI270_BMM150.h", "Arduino_LSM9DS1.h"):
        (folder / name).write_text(SKETCH_STUBS["imu.h"])
    return folder

"""The firmware's C core and pipeline, compiled with the real compilers: host tests under sanitizers, the
Cortex-M4 build run in QEMU, both replaying golden vectors of a real HAPT recording (Python front end +
TFLM via ``harlite simulate``'s golden dump), the serial format read back by ``read_csv``, the core's
size; the whole portable part (front end + C engine + smoothing + serial lines) on a recording under QEMU,
whose '# pred' lines must equal ``harlite simulate --runtime c``, within the flash, RAM and instruction
limits of the released model; the same on a tiny bundle of labels of its own on accelerometer-only data.

The cross toolchain and QEMU come from the Debian packages in .ci/apt-packages.txt; without them these
tests skip locally and fail in CI (the CI environment variable set).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures_bundle import OPTIONS, copy_bundle

from harlite.board.firmware import ENGINE_LIMITS, core_footprint, engine_build, measure, run_pipeline
from harlite.board.sources import C_DIR as CORE
from harlite.board.sources import CORE_SOURCES, RUN_C
from harlite.board.sources import STARTUP as M4_STARTUP
from harlite.board.toolchain import CORTEX_M4, QEMU, WARNINGS
from harlite.bundle.loader import load_bundle
from harlite.cli import main
from harlite.codegen.sources import TFLM_DIR
from harlite.codegen.tflm import DATA_CPP, config_header
from harlite.core.frontend import ACC, RAW6_CHANNELS, FrontEndSpec, cut_windows, features, quantize
from harlite.core.protocol import UCI_LABELS as LABELS
from harlite.data.hapt import load_hapt
from harlite.data.recordings import Recording, read_csv, write_csv
from harlite.data.windows import DataSpec, load_split
from harlite.pipeline.c_sources import write_sources
from harlite.pipeline.convert import convert
from harlite.pipeline.train import TrainConfig, train
from harlite.run.simulate import simulate
from harlite.run.timeline import dump_golden

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
TESTS = FIRMWARE / "tests"
STARTUP = M4_STARTUP
SKETCH = FIRMWARE / "arduino" / "harlite_har"
# What the Arduino Mbed OS Nano Boards core (4.6.0, variants/ARDUINO_NANO33BLE/cflags.txt) compiles C with.
NANO33BLE_CFLAGS = ["-std=gnu11", "-Os", "-Wall", "-Wextra", "-fdata-sections", "-ffunction-sections",
                    "-funsigned-char", "-mcpu=cortex-m4", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16",
                    "-mthumb"]  # fmt: skip
SANITIZERS = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all"]
RELEASED = Path(__file__).resolve().parents[1] / "models" / "cnn_lstm"
FLASH_BUDGET, RAM_BUDGET = 4096, 8192
SAMPLES = 18000  # six minutes at 50 Hz
# The own-label, accelerometer-only dataset: HAPT recordings without the gyroscope, activities renamed.
OWN_SUBJECTS, OWN_TEST = ("1", "3", "5", "2"), "2"
OWN_MERGE = {"WALKING": "walk", "WALKING_UPSTAIRS": "Treppe (\u2191\u2193)", "WALKING_DOWNSTAIRS": "Treppe (\u2191\u2193)",
             "SITTING": "sit or stand", "STANDING": "sit or stand", "LAYING": "lie down"}  # fmt: skip
OWN_LABELS = ["walk", "Treppe (\u2191\u2193)", "sit or stand", "lie down"]
SMOOTHING_MODES = {"none": 0, "majority": 1, "ema": 2}
GOLDEN_LINE = re.compile(
    r"^golden: samples=(\d+) windows=(\d+) values=(\d+) lsb1=(\d+) worse=(\d+) fnv=(\w+)$", re.MULTILINE
)


def tool(name: str) -> str:
    """Path of a compiler or emulator; skip without it, but fail in CI, which must install it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: apt-get install $(cat .ci/apt-packages.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(cmd: list, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        check=False,
    )


def compile_ok(cmd: list) -> None:
    done = run(cmd)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout}{done.stderr}"


def walking(n: int, seed: int = 0) -> np.ndarray:
    """Raw samples like a phone at the waist: gravity on x turning slowly to y, a 2 Hz gait, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 50.0
    raw = rng.normal(0, 0.05, (n, 6))
    raw[:, 0] += np.cos(0.05 * t) + 0.3 * np.sin(2 * np.pi * 2 * t)
    raw[:, 1] += np.sin(0.05 * t)
    raw[:, 4] += 0.8 * np.sin(2 * np.pi * 2 * t + 0.4)
    return raw.astype(np.float32)


def first_minutes(rec: Recording, n: int = SAMPLES) -> Recording:
    return replace(rec, samples=rec.samples[:n], labels=None if rec.labels is None else rec.labels[:n])


@pytest.fixture(scope="module")
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
    print(f"\nown-label acc-only bundle: training windows per class {counts}, test accuracy "
          f"{metrics['test']['float']['accuracy']:.3f} (float, two epochs)")
    return root / "bundle"


def own_recording(bundle: Path) -> Recording:
    """The own dataset's first recording of its test subject, as a user's CSV reads back."""
    folder = Path(load_bundle(bundle).manifest["dataset"]["data"]) / OWN_TEST
    return read_csv(sorted(folder.glob("*.csv"))[0])


@pytest.fixture(scope="module", params=["hapt", "own"])
def golden(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Golden vectors (``harlite simulate --dump-golden``) of six minutes of test subject 2 replayed in
    TFLM: through the tiny HAPT bundle (acc + gyro, UCI HAR's labels), or through the own-label
    accelerometer-only bundle (its recording of subject 2, read from the dataset's CSV)."""
    root = tmp_path_factory.mktemp(f"firmware_{request.param}")
    if request.param == "hapt":
        bundle = copy_bundle(request.getfixturevalue("tiny_bundle"), root / "bundle")
        write_sources(bundle)
        rec = load_hapt(["2"])[0]
    else:
        bundle = copy_bundle(request.getfixturevalue("own_bundle"), root / "bundle")
        rec = own_recording(bundle)
    dump_golden(simulate(bundle, [first_minutes(rec)], runtime="tflm"), root / "golden")
    return root / "golden"


def front_end_golden(directory: Path, spec: FrontEndSpec, raw: np.ndarray) -> Path:
    """Golden input tensors of the Python front end alone (no model) for a front end of another shape;
    the int8 range covers the central 98 % of the standardized values, so the rest saturates."""
    directory.mkdir()
    feats = features(raw, spec)
    mean, std = feats.mean(0), feats.std(0)
    z = (feats - mean) / std
    lo, hi = np.quantile(z, 0.01), np.quantile(z, 0.99)
    scale = float(np.float32((hi - lo) / 255))
    zero = int(np.clip(round(-128 - lo / scale), -128, 127))
    manifest = {
        "labels": list(LABELS), "rate_hz": spec.rate_hz, "window": spec.window, "hop": spec.hop,
        "frontend": spec.to_dict(), "normalization": {"mean": mean.tolist(), "std": std.tolist()},
        "quantization": {"input": {"scale": scale, "zero_point": zero},
                         "output": {"scale": 1 / 256, "zero_point": -128}},
        "artifacts": {"int8": {"file": "model_int8.tflite"}}, "tflm": {"arena_bytes": 8192},
    }  # fmt: skip
    (directory / "harlite_model_config.h").write_text(config_header(manifest, comment="test front end"))
    raw.astype("<f4").tofile(directory / "raw_f32.bin")
    quantize(cut_windows(feats, spec), mean, std, scale, zero).tofile(directory / "input_int8.bin")
    return directory


def build_host(header_dir: Path, out: Path) -> Path:
    """The C tests for the host: gcc, C99, every warning an error, address and undefined-behaviour sanitizers."""
    flags = ["-std=c99", "-O1", "-g", *WARNINGS, *SANITIZERS, f"-I{header_dir}", f"-I{CORE}"]
    compile_ok([tool("gcc"), *flags, *CORE_SOURCES, TESTS / "test_core.c", "-o", out])
    return out


def run_tests(command: list, cwd: Path) -> dict:
    """Run the C tests in a golden directory; returns the golden line's figures."""
    done = run(command, cwd=cwd)
    assert done.returncode == 0 and "ok: 0 failure(s)" in done.stdout, done.stdout + done.stderr
    samples, windows, values, lsb1, _, fnv = GOLDEN_LINE.search(done.stdout).groups()
    return {"samples": int(samples), "windows": int(windows), "values": int(values), "lsb1": int(lsb1), "fnv": fnv}


@pytest.fixture(scope="module")
def host_tests(golden: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_host(golden, tmp_path_factory.mktemp("host") / "test_core")


def test_host_core_replays_golden_vectors_bit_for_bit(host_tests: Path, golden: Path) -> None:
    result = run_tests([host_tests], golden)
    meta = json.loads((golden / "golden.json").read_text())
    assert (result["samples"], result["windows"]) == (meta["samples"], meta["windows"])
    assert result["windows"] == (meta["samples"] - 128) // 64 + 1 > 200
    # Both gravity filters run in float32 with the same operations, so not even one LSB differs
    # (the C test fails on any difference over one LSB; this asserts none at all).
    assert result["lsb1"] == 0, result
    print(f"\nC core vs Python front end on {meta['source']}: {result}")


def test_host_smoothing_matches_python(host_tests: Path, golden: Path) -> None:
    meta = json.loads((golden / "golden.json").read_text())
    assert {"none", "majority:3", "ema:0.5"} <= set(meta["smoothed"])
    for text, want in meta["smoothed"].items():
        mode, _, arg = text.partition(":")
        k, alpha = (arg, "0") if mode == "majority" else ("0", arg or "0")
        done = run([host_tests, "smooth", SMOOTHING_MODES[mode], k, alpha, "output_int8.bin"], cwd=golden)
        assert done.returncode == 0, done.stdout + done.stderr
        assert [int(line) for line in done.stdout.split()] == want, text


def test_serial_samples_read_back_by_read_csv(host_tests: Path, golden: Path, tmp_path: Path) -> None:
    """A captured session (the board's sample lines) replays in the simulator with the board's values."""
    done = run([host_tests, "csv", "raw_f32.bin"], cwd=golden)
    assert done.returncode == 0, done.stderr
    (tmp_path / "session.csv").write_text(done.stdout)
    rec = read_csv(tmp_path / "session.csv")
    raw = np.fromfile(golden / "raw_f32.bin", dtype="<f4").reshape(len(rec), -1)
    assert rec.rate == 50.0 and rec.samples.shape == raw.shape and raw.shape[1] in (3, 6)
    exact = np.abs(raw) >= 2.0**-6  # 9 decimals give these back exactly, the rest within 1e-9
    np.testing.assert_array_equal(rec.samples[exact], raw[exact])
    np.testing.assert_allclose(rec.samples, raw, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "spec",
    [
        FrontEndSpec(channels=RAW6_CHANNELS, hop=48),
        FrontEndSpec(window=100, hop=100, channels=("gravity_acc_y", "body_acc_z", "gyro_x", "total_acc_x")),
    ],
    ids=["raw6-hop48", "gravity-window100"],
)
def test_host_core_other_front_ends(spec: FrontEndSpec, tmp_path: Path) -> None:
    directory = front_end_golden(tmp_path / "golden", spec, walking(2500, seed=3))
    result = run_tests([build_host(directory, tmp_path / "test_core")], directory)
    assert result["windows"] == (2500 - spec.window) // spec.hop + 1
    assert result["lsb1"] == 0, result


def build_cortex_m4(header_dir: Path, out: Path) -> Path:
    """The same C tests for the Cortex-M4F (newlib, semihosting), linked for QEMU's mps2-an386."""
    sources = [STARTUP / "startup.c", *CORE_SOURCES, TESTS / "test_core.c"]
    flags = ["-std=c99", *CORTEX_M4, "-Os", "-g", *WARNINGS, f"-I{header_dir}", f"-I{CORE}"]
    link = ["--specs=rdimon.specs", "-T", STARTUP / "mps2_an386.ld"]
    compile_ok([tool("arm-none-eabi-gcc"), *flags, *sources, *link, "-o", out])
    return out


def test_cortex_m4_under_qemu_equals_host(host_tests: Path, golden: Path, tmp_path: Path) -> None:
    elf = build_cortex_m4(golden, tmp_path / "test_core.elf")
    on_arm = run_tests([tool("qemu-system-arm"), *QEMU, "-kernel", elf], golden)
    on_host = run_tests([host_tests], golden)
    assert on_arm == on_host  # bit for bit: the same int8 tensors (hash) and the same 1-LSB count
    print(f"\nCortex-M4 (QEMU mps2-an386) vs host: {on_arm}")


def test_core_fits_cortex_m4_budget(golden: Path, tmp_path: Path) -> None:
    tool("arm-none-eabi-gcc")
    size = core_footprint(golden)
    print(f"\ncore on Cortex-M4 -Os: {size}")
    assert size["flash_bytes"] < FLASH_BUDGET and size["ram_bytes"] + size["stack_bytes"] < RAM_BUDGET
    meta = json.loads((golden / "golden.json").read_text())
    assert size["state_bytes"] >= meta["window"] * meta["channels"]  # the int8 ring is in the state
    gcc = tool("arm-none-eabi-gcc")
    # The Nano 33 BLE core compiles C as gnu11, where GCC fuses a*b+c by default: the core turns that
    # off, as numpy rounds twice (a fused multiply-add moves values by an LSB).
    compile_ok([gcc, *NANO33BLE_CFLAGS, "-Werror", f"-I{golden}", f"-I{CORE}", "-c", CORE_SOURCES[0],
                "-o", tmp_path / "nano.o"])  # fmt: skip
    disassembly = run([tool("arm-none-eabi-objdump"), "-d", tmp_path / "nano.o"]).stdout
    assert "vmul.f32" in disassembly and not re.search(r"\bv(fm|fnm)[as]\.f32", disassembly)


def test_model_array_cross_compiles_into_flash(golden: Path, tmp_path: Path) -> None:
    """The generated model array, as the sketch compiles it: const (flash, .rodata), 16-byte aligned."""
    tflm = golden.parent / "bundle" / TFLM_DIR
    obj = tmp_path / "model_data.o"
    compile_ok([tool("arm-none-eabi-g++"), "-std=gnu++14", *CORTEX_M4, "-Os", "-Wall", "-Wextra", "-Werror", "-c",
                tflm / DATA_CPP, "-o", obj])  # fmt: skip
    symbols = run([tool("arm-none-eabi-nm"), "-S", obj]).stdout.split()
    _, size, kind = symbols[symbols.index("harlite_model_data") - 3 : symbols.index("harlite_model_data")]
    model_bytes = (golden.parent / "bundle" / "model_int8.tflite").stat().st_size
    assert (int(size, 16), kind) == (model_bytes, "R")
    sections = run([tool("arm-none-eabi-objdump"), "-h", obj]).stdout
    assert re.search(r"\.rodata\S*\s+\w+\s+\w+\s+\w+\s+\w+\s+2\*\*4", sections), sections


def test_sketch_carries_the_core_unchanged() -> None:
    """The Arduino IDE compiles only the sketch folder, so it holds copies of the core: the same bytes."""
    for name in ("harlite_core.h", "harlite_core.c", "harlite_serial.h", "harlite_serial.c", "harlite_pipeline.h",
                 "harlite_pipeline.c"):
        assert (SKETCH / name).read_bytes() == (CORE / name).read_bytes(), f"cp harlite/board/c/{name} {SKETCH}/"


# ---------------------------------------------------------------- the whole portable part, as the board runs it


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


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path, own_bundle: Path) -> dict:
    """Per bundle (released, own): a recording as a CSV file, the samples the board gets from it, and
    ``harlite simulate BUNDLE REC.csv --runtime c --smoothing majority:3`` (the sketch's smoothing) on it."""
    root = tmp_path_factory.mktemp("replays")
    cases = {"released": (RELEASED, load_hapt(["2"])[0]), "own": (own_bundle, own_recording(own_bundle))}
    result = {}
    for name, (bundle, rec) in cases.items():
        csv = write_csv(first_minutes(rec), root / name / "rec.csv")
        out = root / name / "sim"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HARLITE_CACHE", str(_session_cache))
            done = CliRunner().invoke(main, ["simulate", str(bundle), str(csv), "--runtime", "c", "--smoothing",
                                             "majority:3", "--out", str(out)])  # fmt: skip
        assert done.exit_code == 0, done.output
        result[name] = {"bundle": bundle, "raw": read_csv(csv).samples, "timeline": out / "timeline.json"}
    return result


def test_firmware_on_cortex_m4_prints_what_simulate_predicts_within_limits(replays: dict, tmp_path: Path) -> None:
    """The released bundle's engine path (front end + C engine + weights + smoothing + serial lines) built
    for the Cortex-M4 and run under QEMU on six minutes of HAPT test subject 2: every pred line equals the
    simulator's; flash, RAM (static + measured stack) and instructions per window within issue 14's limits."""
    tool("arm-none-eabi-gcc")
    tool("qemu-system-arm")
    case = replays["released"]
    figures = measure(engine_build(load_bundle(case["bundle"])), case["raw"], tmp_path)
    lines = figures.pop("pred_lines")
    assert_pred_lines_equal_timeline(lines, case["timeline"])
    assert figures["samples"] == SAMPLES and figures["windows"] == len(lines) == 280 and figures["failed_windows"] == 0
    parts = figures.pop("parts")
    print(f"\nengine path on Cortex-M4 (QEMU): {len(lines)} pred lines identical to simulate --runtime c; {figures}")
    print("parts: " + ", ".join(f"{k} {v['flash_bytes']} B flash / {v['ram_bytes']} B RAM" for k, v in parts.items()))
    # What is counted: the parts add up to the image, which holds the portable part and what newlib and
    # libgcc add for it (memcpy, memset), nothing of the test driver, start-up code or stdio.
    assert sum(v["flash_bytes"] for v in parts.values()) == figures["flash_bytes"]
    assert sum(v["ram_bytes"] for v in parts.values()) == figures["static_ram_bytes"]
    engine = load_bundle(RELEASED).manifest["engine"]
    assert parts["engine model (weights)"]["flash_bytes"] > engine["weight_bytes"]
    assert parts["engine model (weights)"]["ram_bytes"] == engine["scratch_bytes"]
    assert parts["pipeline state"]["ram_bytes"] >= 2 * 128 * 9  # the front end's ring and the model's input
    assert 0 < figures["stack_bytes"] < 4096
    assert figures["ram_bytes"] == figures["static_ram_bytes"] + figures["stack_bytes"]
    for key, limit in ENGINE_LIMITS.items():
        assert figures[key] <= limit, (key, figures[key], limit)
    assert figures["instructions"]["model"] > 706_800  # at least one instruction per multiply-accumulate
    # invoke_ms under QEMU: the model's instructions at one a cycle of the nRF52840's 64 MHz
    expected_ms = figures["instructions"]["model"] / 64_000
    assert {int(pred_fields(line)["invoke_ms"]) for line in lines} <= {int(expected_ms), int(expected_ms) + 1}


def build_host_pipeline(bundle: Path, out: Path) -> Path:
    """The pipeline driver with the bundle's C engine for the host: gcc, C99, sanitizers, warnings as errors."""
    build = engine_build(load_bundle(bundle))
    flags = ["-std=c99", "-O1", "-g", *WARNINGS, *SANITIZERS, *build.flags()]
    compile_ok([tool("gcc"), *flags, *build.c_sources, RUN_C, "-o", out])
    return out


@pytest.mark.parametrize("case", ["released", "own"])
def test_pipeline_on_the_host_prints_what_simulate_predicts(case: str, replays: dict, tmp_path: Path) -> None:
    """The same driver and pipeline under ASan/UBSan on the host, on the released bundle and on the
    own-label accelerometer-only one (labels with spaces and non-ASCII letters, three raw channels)."""
    replay = replays[case]
    lines, figures = run_pipeline([build_host_pipeline(replay["bundle"], tmp_path / "run_pipeline")], replay["raw"],
                                  tmp_path)  # fmt: skip
    assert_pred_lines_equal_timeline(lines, replay["timeline"])
    assert figures["failed_windows"] == 0 and figures["samples"] == len(replay["raw"])


def test_own_label_acc_only_engine_path_on_cortex_m4(replays: dict, tmp_path: Path) -> None:
    tool("qemu-system-arm")
    replay = replays["own"]
    figures = measure(engine_build(load_bundle(replay["bundle"])), replay["raw"], tmp_path)
    lines = figures.pop("pred_lines")
    assert_pred_lines_equal_timeline(lines, replay["timeline"])
    assert {pred_fields(line)["pred_raw"] for line in lines} <= set(OWN_LABELS)
    assert replay["raw"].shape[1] == 3
    figures.pop("parts")
    print(f"\nown-label acc-only engine path on Cortex-M4 (QEMU): {len(lines)} pred lines identical; {figures}")


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


@pytest.mark.parametrize("imu", ["HARLITE_IMU_BMI270", "HARLITE_IMU_LSM9DS1"])
def test_sketch_with_the_c_engine_needs_no_tflm(imu: str, tmp_path: Path) -> None:
    """The sketch folder as the Arduino builder compiles it with -DHARLITE_ENGINE (every .c with the Nano 33
    BLE's C flags, .cpp and the .ino as C++ with Arduino.h first), with no TFLM header on the include path:
    no warning, and nothing of TFLM is included."""
    for name, text in SKETCH_STUBS.items():
        (tmp_path / name).write_text(text)
    for name in ("Arduino_BMI270_BMM150.h", "Arduino_LSM9DS1.h"):
        shutil.copy(tmp_path / "imu.h", tmp_path / name)
    gcc, gxx = tool("arm-none-eabi-gcc"), tool("arm-none-eabi-g++")
    cxx = ["-std=gnu++14", *NANO33BLE_CFLAGS[1:], "-Werror", f"-I{tmp_path}", f"-I{SKETCH}", f"-D{imu}", "-DHARLITE_ENGINE"]
    for source in sorted(SKETCH.glob("*.c")):
        compile_ok([gcc, *NANO33BLE_CFLAGS, "-Werror", f"-I{SKETCH}", "-c", source, "-o", tmp_path / f"{source.stem}.o"])
    compile_ok([gxx, *cxx, "-c", SKETCH / DATA_CPP, "-o", tmp_path / "data.o"])
    compile_ok([gxx, *cxx, "-x", "c++", "-include", "Arduino.h", "-c", SKETCH / "harlite_har.ino", "-o", tmp_path / "ino.o",
                "-MD", "-MF", tmp_path / "ino.d"])  # fmt: skip
    included = (tmp_path / "ino.d").read_text()
    assert "harlite_engine.h" in included and "harlite_pipeline.h" in included
    assert "tensorflow" not in included and "harlite_op_resolver.h" not in included

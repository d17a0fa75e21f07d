"""The firmware's C core and pipeline, compiled with the real compilers: host tests under sanitizers, the
Cortex-M4 build run in QEMU, both replaying golden vectors of a real HAPT recording (Python front end +
TFLM via ``harlite simulate``'s golden dump), the serial format read back by ``read_csv``, the core's
size; the per-sample path (front end + C engine + smoothing + serial lines) on a recording on the host
and, for a tiny bundle of labels of its own on accelerometer-only data, under QEMU, whose '# pred' lines
must equal ``harlite simulate --runtime c`` (the released model on five cores: tests/test_cores.py); the
sketch folder firmware/arduino/harlite_har, which must be what harlite writes, compiled as the Arduino
builder would.

The cross toolchain and QEMU come from the Debian packages in .ci/apt-packages.txt (scripts/test.sh
installs them); without them these tests fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures_bundle import copy_bundle
from fixtures_firmware import (
    NANO33BLE_CFLAGS,
    OWN_LABELS,
    assert_pred_lines_equal_timeline,
    first_minutes,
    own_recording,
    pred_fields,
    write_stubs,
)
from tools import SANITIZERS, compile_ok, run, tool

from harlite.board.firmware import core_footprint, engine_build, measure
from harlite.board.images import run_pipeline
from harlite.board.sources import ARM_STARTUP, CORE_SOURCES, RUN_C
from harlite.board.sources import C_DIR as CORE
from harlite.board.toolchain import CORES, WARNINGS
from harlite.bundle.loader import load_bundle
from harlite.codegen.sources import TFLM_DIR
from harlite.codegen.tflm import DATA_CPP, config_header
from harlite.core.frontend import RAW6_CHANNELS, FrontEndSpec, cut_windows, features, quantize
from harlite.core.protocol import UCI_LABELS as LABELS
from harlite.data.hapt import load_hapt
from harlite.data.recordings import read_csv
from harlite.errors import HarliteError
from harlite.pipeline.c_sources import write_sketch, write_sources
from harlite.run.simulate import simulate
from harlite.run.timeline import dump_golden

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
TESTS = FIRMWARE / "tests"
SKETCH = FIRMWARE / "arduino" / "harlite_har"
RELEASED = Path(__file__).resolve().parents[1] / "models" / "cnn_lstm"
FLASH_BUDGET, RAM_BUDGET = 4096, 8192
M4 = CORES["cortex-m4"]
SMOOTHING_MODES = {"none": 0, "majority": 1, "ema": 2}
GOLDEN_LINE = re.compile(
    r"^golden: samples=(\d+) windows=(\d+) values=(\d+) lsb1=(\d+) worse=(\d+) fnv=(\w+)$", re.MULTILINE
)


def walking(n: int, seed: int = 0) -> np.ndarray:
    """Raw samples like a phone at the waist: gravity on x turning slowly to y, a 2 Hz gait, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 50.0
    raw = rng.normal(0, 0.05, (n, 6))
    raw[:, 0] += np.cos(0.05 * t) + 0.3 * np.sin(2 * np.pi * 2 * t)
    raw[:, 1] += np.sin(0.05 * t)
    raw[:, 4] += 0.8 * np.sin(2 * np.pi * 2 * t + 0.4)
    return raw.astype(np.float32)


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
    sources = [ARM_STARTUP, *CORE_SOURCES, TESTS / "test_core.c"]
    flags = ["-std=c99", *M4.cpu, "-Os", "-g", *WARNINGS, f"-I{header_dir}", f"-I{CORE}"]
    compile_ok([tool("arm-none-eabi-gcc"), *flags, *sources, *M4.link_flags(), *M4.run_libs, "-o", out])
    return out


def test_cortex_m4_under_qemu_equals_host(host_tests: Path, golden: Path, tmp_path: Path) -> None:
    elf = build_cortex_m4(golden, tmp_path / "test_core.elf")
    on_arm = run_tests([*M4.emulator(), "-kernel", elf], golden)
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
    compile_ok([tool("arm-none-eabi-g++"), "-std=gnu++14", *M4.cpu, "-Os", "-Wall", "-Wextra", "-Werror", "-c",
                tflm / DATA_CPP, "-o", obj])  # fmt: skip
    symbols = run([tool("arm-none-eabi-nm"), "-S", obj]).stdout.split()
    _, size, kind = symbols[symbols.index("harlite_model_data") - 3 : symbols.index("harlite_model_data")]
    model_bytes = (golden.parent / "bundle" / "model_int8.tflite").stat().st_size
    assert (int(size, 16), kind) == (model_bytes, "R")
    sections = run([tool("arm-none-eabi-objdump"), "-h", obj]).stdout
    assert re.search(r"\.rodata\S*\s+\w+\s+\w+\s+\w+\s+\w+\s+2\*\*4", sections), sections


def test_sketch_folder_is_what_harlite_writes(tmp_path: Path) -> None:
    """firmware/arduino/harlite_har holds no file kept by hand: the released bundle's sketch, regenerated
    from the package and the bundle, is the same folder, file for file and byte for byte."""
    written = write_sketch(load_bundle(RELEASED), tmp_path / "sketch")
    assert {p.name for p in written} == {p.name for p in (tmp_path / "sketch").iterdir()} - {".harlite.lock"}
    ours = {p.name: p.read_bytes() for p in sorted(SKETCH.iterdir()) if p.name != ".harlite.lock"}
    regenerated = {p.name: p.read_bytes() for p in written}
    assert sorted(ours) == sorted(regenerated)
    for name, data in regenerated.items():
        assert ours[name] == data, f"{SKETCH / name} differs from what harlite writes"


def test_an_edited_sketch_is_kept_and_other_files_refused_without_force(tmp_path: Path) -> None:
    bundle = load_bundle(RELEASED)
    folder = tmp_path / "sketch"
    write_sketch(bundle, folder)
    ino, core = folder / "harlite_har.ino", folder / "harlite_core.c"
    ino.write_text(ino.read_text().replace("/* #define HARLITE_ENGINE */", "#define HARLITE_ENGINE"))
    core.write_text(core.read_text() + "\n")  # harlite's file, still marked: refreshed
    edited = ino.read_text()
    write_sketch(bundle, folder)
    assert ino.read_text() == edited and core.read_bytes() == (SKETCH / "harlite_core.c").read_bytes()
    core.write_text("/* my own core */\n")  # not harlite's any more
    with pytest.raises(HarliteError, match="--force"):
        write_sketch(bundle, folder)
    write_sketch(bundle, folder, force=True)
    assert ino.read_bytes() == (SKETCH / "harlite_har.ino").read_bytes()


# ---------------------------------------------------------------- the whole portable part, as the board runs it


def build_host_pipeline(bundle: Path, out: Path) -> Path:
    """The pipeline driver with the bundle's C library for the host: gcc, C99, sanitizers, warnings as errors."""
    build = engine_build(load_bundle(bundle), out.parent / "library")
    flags = ["-std=c99", "-O1", "-g", *WARNINGS, *SANITIZERS, *build.flags()]
    compile_ok([tool("gcc"), *flags, *build.c_sources, RUN_C, "-o", out])
    return out


@pytest.mark.parametrize("case", ["released", "own"])
def test_pipeline_on_the_host_prints_what_simulate_predicts(case: str, request: pytest.FixtureRequest,
                                                            tmp_path: Path) -> None:  # fmt: skip
    """The same driver and library under ASan/UBSan on the host, on the released bundle and on the
    own-label accelerometer-only one (labels with spaces and non-ASCII letters, three raw channels)."""
    replay = request.getfixturevalue(f"{case}_replay")
    lines, figures = run_pipeline([build_host_pipeline(replay["bundle"], tmp_path / "run_pipeline")], replay["raw"],
                                  tmp_path)  # fmt: skip
    assert_pred_lines_equal_timeline(lines, replay["timeline"])
    assert figures["failed_windows"] == 0 and figures["samples"] == len(replay["raw"])


def test_own_label_acc_only_engine_path_on_cortex_m4(own_replay: dict, tmp_path: Path) -> None:
    figures = measure(
        engine_build(load_bundle(own_replay["bundle"]), tmp_path / "library"), own_replay["raw"], tmp_path
    )
    lines = figures.pop("pred_lines")
    assert_pred_lines_equal_timeline(lines, own_replay["timeline"])
    assert {pred_fields(line)["pred_raw"] for line in lines} <= set(OWN_LABELS)
    assert own_replay["raw"].shape[1] == 3
    figures.pop("parts")
    print(f"\nown-label acc-only engine path on Cortex-M4 (QEMU): {len(lines)} pred lines identical; {figures}")


@pytest.mark.parametrize("imu", ["HARLITE_IMU_BMI270", "HARLITE_IMU_LSM9DS1"])
def test_sketch_with_the_c_engine_needs_no_tflm(imu: str, tmp_path: Path) -> None:
    """The sketch folder as the Arduino builder compiles it with -DHARLITE_ENGINE (every .c with the Nano 33
    BLE's C flags, .cpp and the .ino as C++ with Arduino.h first), with no TFLM header on the include path:
    no warning, and nothing of TFLM is included."""
    write_stubs(tmp_path)
    gcc, gxx = tool("arm-none-eabi-gcc"), tool("arm-none-eabi-g++")
    cxx = [
        "-std=gnu++14",
        *NANO33BLE_CFLAGS[1:],
        "-Werror",
        f"-I{tmp_path}",
        f"-I{SKETCH}",
        f"-D{imu}",
        "-DHARLITE_ENGINE",
    ]
    for source in sorted(SKETCH.glob("*.c")):
        compile_ok(
            [gcc, *NANO33BLE_CFLAGS, "-Werror", f"-I{SKETCH}", "-c", source, "-o", tmp_path / f"{source.stem}.o"]
        )
    compile_ok([gxx, *cxx, "-c", SKETCH / DATA_CPP, "-o", tmp_path / "data.o"])
    compile_ok([gxx, *cxx, "-x", "c++", "-include", "Arduino.h", "-c", SKETCH / "harlite_har.ino", "-o", tmp_path / "ino.o",
                "-MD", "-MF", tmp_path / "ino.d"])  # fmt: skip
    included = (tmp_path / "ino.d").read_text()
    assert "harlite_engine.h" in included and "harlite_pipeline.h" in included
    assert "tensorflow" not in included and "harlite_op_resolver.h" not in included

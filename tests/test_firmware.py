"""The firmware's C core, compiled with the real compilers: host tests under sanitizers, the Cortex-M4
build run in QEMU, both replaying golden vectors of a real HAPT recording (Python front end + TFLM via
``harlite simulate``'s golden dump), the serial format read back by ``read_csv``, and the core's size.

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
from fixtures_bundle import copy_bundle

from harlite.codegen import DATA_CPP, TFLM_DIR, config_header, write_sources
from harlite.data.hapt import load_hapt
from harlite.data.recordings import read_csv
from harlite.firmware import CORE, CORE_SOURCES, CORTEX_M4, FIRMWARE, WARNINGS, core_footprint
from harlite.frontend import RAW6_CHANNELS, FrontEndSpec, cut_windows, features, quantize
from harlite.protocol import UCI_LABELS as LABELS
from harlite.simulate import dump_golden, simulate

TESTS = FIRMWARE / "tests"
STARTUP = TESTS / "cortex_m4"
SKETCH = FIRMWARE / "arduino" / "harlite_har"
# What the Arduino Mbed OS Nano Boards core (4.6.0, variants/ARDUINO_NANO33BLE/cflags.txt) compiles C with.
NANO33BLE_CFLAGS = ["-std=gnu11", "-Os", "-Wall", "-Wextra", "-fdata-sections", "-ffunction-sections",
                    "-funsigned-char", "-mcpu=cortex-m4", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16",
                    "-mthumb"]  # fmt: skip
SANITIZERS = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all"]
QEMU = ["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-semihosting-config", "enable=on,target=native"]
FLASH_BUDGET, RAM_BUDGET = 4096, 8192
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


@pytest.fixture(scope="module")
def golden(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """Golden vectors (``harlite simulate --dump-golden``) of six minutes of test subject 2 replayed in
    TFLM through the tiny bundle, with the TFLM sources that ``harlite convert`` generates."""
    root = tmp_path_factory.mktemp("firmware")
    bundle = copy_bundle(tiny_bundle, root / "bundle")
    write_sources(bundle)
    rec = load_hapt([2])[0]
    rec = replace(rec, samples=rec.samples[:18000], labels=rec.labels[:18000])
    dump_golden(simulate(bundle, [rec], runtime="tflm"), root / "golden")
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
    assert (result["samples"], result["windows"]) == (meta["samples"], meta["windows"]) == (18000, 280)
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
    raw = np.fromfile(golden / "raw_f32.bin", dtype="<f4").reshape(-1, 6)
    assert rec.rate == 50.0 and rec.samples.shape == raw.shape
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
    assert size["state_bytes"] >= 128 * len(FrontEndSpec().channels)  # the int8 ring is in the state
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
    for name in ("harlite_core.h", "harlite_core.c", "harlite_serial.h", "harlite_serial.c"):
        assert (SKETCH / name).read_bytes() == (CORE / name).read_bytes(), f"cp firmware/core/{name} {SKETCH}/"

"""The firmware's C core, compiled with the real compilers: host tests under sanitizers, the Cortex-M4
build run in QEMU, both replaying golden vectors of the Python front end and TFLM, and the core's size.

The cross toolchain and QEMU come from the Debian packages in .ci/apt-packages.txt; without them these
tests skip locally and fail in CI (the CI environment variable set).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fixtures_bundle import copy_bundle, tiny_bundle  # noqa: F401  (session fixture)

from harlite.data.recordings import Recording
from harlite.frontend import RAW6_CHANNELS, FrontEndSpec, cut_windows, features, quantize, quantize_params
from harlite.manifest import load_manifest
from harlite.protocol import LABELS

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
CORE = FIRMWARE / "core"
TESTS = FIRMWARE / "tests"
STARTUP = TESTS / "cortex_m4"
CORTEX_M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wpedantic", "-Wshadow", "-Wconversion"]
SANITIZERS = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all"]
QEMU = ["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-semihosting-config", "enable=on,target=native"]
FLASH_BUDGET, RAM_BUDGET = 4096, 8192
SMOOTHING_MODES = {"none": 0, "majority": 1, "ema": 2}
GOLDEN_LINE = re.compile(r"^golden: samples=(\d+) windows=(\d+) values=(\d+) lsb1=(\d+) worse=(\d+) fnv=(\w+)$", re.M)


def tool(name: str) -> str:
    """Path of a compiler or emulator; skip without it, but fail in CI, which must install it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: apt-get install $(cat .ci/apt-packages.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def compile_ok(cmd: list[str]) -> None:
    done = run(cmd)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout}{done.stderr}"


def config_header(manifest: dict) -> str:
    """The bundle's harlite_model_config.h (docs: the generated C header contract), written here until
    harlite.codegen provides it."""
    spec = FrontEndSpec.from_dict(manifest["frontend"])
    qi, qo = manifest["quantization"]["input"], manifest["quantization"]["output"]

    def f32(x: float) -> str:
        text = f"{float(np.float32(x)):.9g}"
        return text + (".0f" if text.lstrip("-").isdigit() else "f")

    def init(values, fmt=str) -> str:
        return "{ " + ", ".join(fmt(v) for v in values) + " }"

    def quoted(s: str) -> str:
        return f'"{s}"'

    defines = {
        "RATE_HZ": f"{spec.rate_hz:g}",
        "WINDOW": spec.window,
        "HOP": spec.hop,
        "NUM_RAW": 6,
        "NUM_CHANNELS": len(spec.channels),
        "NUM_CLASSES": len(manifest["labels"]),
        "CH_RAW": 0,
        "CH_BODY": 1,
        "CH_GRAVITY": 2,
        "CHANNEL_KIND": init(spec.kinds),
        "CHANNEL_SOURCE": init(spec.sources),
        "CHANNEL_NAMES": init(spec.channels, quoted),
        "CHANNEL_UNITS": init(spec.to_dict()["units"], quoted),
        "LABELS": init(manifest["labels"], quoted),
        "GRAVITY_SECTIONS": len(spec.sos),
        "GRAVITY_SOS": init(spec.sos, lambda row: init(row, f32)),
        "GRAVITY_ZI": init(spec.zi, lambda row: init(row, f32)),
        "INPUT_SCALE": f32(qi["scale"]),
        "INPUT_ZERO_POINT": f"({int(qi['zero_point'])})",
        "INPUT_MUL": init(qi["input_mul"], f32),
        "INPUT_ADD": init(qi["input_add"], f32),
        "OUTPUT_SCALE": f32(qo["scale"]),
        "OUTPUT_ZERO_POINT": f"({int(qo['zero_point'])})",
        "ARENA_BYTES": manifest.get("tflm", {}).get("arena_bytes", 16384),
    }
    lines = [f"#define HARLITE_{k} {v}" for k, v in defines.items()]
    return "\n".join(["#ifndef HARLITE_MODEL_CONFIG_H", "#define HARLITE_MODEL_CONFIG_H", *lines, "#endif", ""])


def walking(n: int, seed: int = 0) -> np.ndarray:
    """Raw samples like a phone at the waist: gravity on x turning slowly to y, a 2 Hz gait, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 50.0
    raw = rng.normal(0, 0.05, (n, 6))
    raw[:, 0] += np.cos(0.05 * t) + 0.3 * np.sin(2 * np.pi * 2 * t)
    raw[:, 1] += np.sin(0.05 * t)
    raw[:, 4] += 0.8 * np.sin(2 * np.pi * 2 * t + 0.4)
    return raw.astype(np.float32)


def recording() -> Recording:
    """A real HAPT recording of a test subject when the loader is there, else a synthetic walk."""
    try:
        from harlite.data.hapt import load_hapt
    except ImportError:
        return Recording(walking(6000), source="synthetic walk")
    return next(rec for rec in load_hapt() if rec.subject == 2)


@pytest.fixture(scope="module")
def golden(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """Golden vectors of a recording replayed through the tiny bundle in TFLM (`harlite simulate
    --dump-golden`)."""
    from harlite.simulate import dump_golden, simulate

    root = tmp_path_factory.mktemp("firmware")
    bundle = copy_bundle(tiny_bundle, root / "bundle")
    header = bundle / "tflm" / "harlite_model_config.h"
    if not header.exists():
        header.parent.mkdir(exist_ok=True)
        header.write_text(config_header(load_manifest(bundle)))
    result = simulate(load_manifest(bundle), [recording()], runtime="tflm")
    dump_golden(result, root / "golden")
    return root / "golden"


def front_end_golden(directory: Path, spec: FrontEndSpec, raw: np.ndarray, clip: float) -> Path:
    """Golden vectors of the Python front end alone (no model) for a front end of another shape; the
    int8 range covers the central ``1 - 2 * clip`` of the standardized values, so the rest saturates."""
    directory.mkdir()
    feats = features(raw, spec)
    mean, std = feats.mean(0), feats.std(0)
    z = (feats - mean) / std
    lo, hi = np.quantile(z, clip), np.quantile(z, 1 - clip)
    scale = float(np.float32((hi - lo) / 255))
    zero = int(np.clip(round(-128 - lo / scale), -128, 127))
    mul, add = quantize_params(mean, std, scale, zero)
    manifest = {
        "labels": list(LABELS),
        "frontend": spec.to_dict(),
        "quantization": {
            "input": {"scale": scale, "zero_point": zero, "input_mul": mul.tolist(), "input_add": add.tolist()},
            "output": {"scale": 1 / 256, "zero_point": -128},
        },
    }
    (directory / "harlite_model_config.h").write_text(config_header(manifest))
    raw.astype("<f4").tofile(directory / "raw_f32.bin")
    quantize(cut_windows(feats, spec), mean, std, scale, zero).tofile(directory / "input_int8.bin")
    return directory


def build_host(header_dir: Path, out: Path) -> Path:
    """The C tests for the host: gcc, C99, every warning an error, address and undefined-behaviour sanitizers."""
    sources = [CORE / "harlite_core.c", TESTS / "test_core.c"]
    flags = ["-std=c99", "-O1", "-g", *WARNINGS, *SANITIZERS, f"-I{header_dir}", f"-I{CORE}"]
    compile_ok([tool("gcc"), *flags, *sources, "-o", out])
    return out


def run_tests(binary: list[str | Path], cwd: Path) -> dict[str, int | str]:
    """Run the C tests in a golden directory; returns the golden line's figures."""
    done = run(binary, cwd=cwd)
    assert done.returncode == 0 and "ok: 0 failure(s)" in done.stdout, done.stdout + done.stderr
    samples, windows, values, lsb1, worse, fnv = GOLDEN_LINE.search(done.stdout).groups()
    return {"samples": int(samples), "windows": int(windows), "values": int(values), "lsb1": int(lsb1), "fnv": fnv}


@pytest.fixture(scope="module")
def host_tests(golden: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_host(golden, tmp_path_factory.mktemp("host") / "test_core")


def test_host_core_replays_golden_vectors_within_one_lsb(host_tests: Path, golden: Path) -> None:
    result = run_tests([host_tests], golden)
    meta = json.loads((golden / "golden.json").read_text())
    assert (result["samples"], result["windows"]) == (meta["samples"], meta["windows"])
    # Only float rounding may differ (the C gravity filter runs in float32, numpy's in float64).
    assert result["lsb1"] <= 0.002 * result["values"], result
    print(f"\nhost vs Python on {meta['source']}: {result}")


def test_host_smoothing_matches_python(host_tests: Path, golden: Path) -> None:
    meta = json.loads((golden / "golden.json").read_text())
    assert meta["smoothed"], "golden.json has no smoothed predictions"
    for text, want in meta["smoothed"].items():
        mode, _, arg = text.partition(":")
        k, alpha = (arg, "0") if mode == "majority" else ("0", arg or "0")
        done = run([host_tests, "smooth", SMOOTHING_MODES[mode], k, alpha, "output_int8.bin"], cwd=golden)
        assert done.returncode == 0, done.stdout + done.stderr
        assert [int(line) for line in done.stdout.split()] == want, text


@pytest.mark.parametrize(
    "spec",
    [
        FrontEndSpec(channels=RAW6_CHANNELS, hop=48),
        FrontEndSpec(window=100, hop=100, channels=("gravity_acc_y", "body_acc_z", "gyro_x", "total_acc_x")),
    ],
    ids=["raw6-hop48", "gravity-window100"],
)
def test_host_core_other_front_ends(spec: FrontEndSpec, tmp_path: Path) -> None:
    directory = front_end_golden(tmp_path / "golden", spec, walking(2500, seed=3), clip=0.01)
    result = run_tests([build_host(directory, tmp_path / "test_core")], directory)
    assert result["windows"] == (2500 - spec.window) // spec.hop + 1
    assert result["lsb1"] <= 0.002 * result["values"], result
    print(f"\n{spec.channels}, window {spec.window}, hop {spec.hop}: {result}")


def build_cortex_m4(header_dir: Path, out: Path) -> Path:
    """The same C tests for the Cortex-M4F (newlib, semihosting), linked for QEMU's mps2-an386."""
    sources = [STARTUP / "startup.c", CORE / "harlite_core.c", TESTS / "test_core.c"]
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


def arm_size(obj: Path) -> dict[str, int]:
    """text, data and bss bytes of an object (arm-none-eabi-size, Berkeley format)."""
    lines = run([tool("arm-none-eabi-size"), obj]).stdout.splitlines()
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def test_core_fits_cortex_m4_budget(golden: Path, tmp_path: Path) -> None:
    gcc = tool("arm-none-eabi-gcc")
    flags = ["-std=c99", *CORTEX_M4, "-Os", *WARNINGS, f"-I{golden}", f"-I{CORE}", "-c"]
    compile_ok([gcc, *flags, "-fstack-usage", CORE / "harlite_core.c", "-o", tmp_path / "core.o"])
    # The caller's RAM: one front end and one smoother, the state the sketch keeps.
    probe = tmp_path / "state.c"
    probe.write_text('#include "harlite_core.h"\nharlite_frontend_t fe;\nharlite_smoother_t sm;\n')
    compile_ok([gcc, *flags, probe, "-o", tmp_path / "state.o"])
    core, state = arm_size(tmp_path / "core.o"), arm_size(tmp_path / "state.o")
    stack = max(int(line.split("\t")[1]) for line in (tmp_path / "core.su").read_text().splitlines())
    flash = core["text"] + core["data"]
    ram = core["data"] + core["bss"] + state["bss"]
    print(f"\ncore on Cortex-M4 -Os: flash {flash} B, RAM {ram} B (state {state['bss']} B), deepest frame {stack} B")
    assert flash < FLASH_BUDGET and ram + stack < RAM_BUDGET
    # Arduino compiles C as gnu11, where GCC fuses a*b+c by default; the core turns that off, as numpy
    # rounds twice (a fused multiply-add moves values by an LSB).
    gnu = [gcc, "-std=gnu11", *CORTEX_M4, "-Os", f"-I{golden}", f"-I{CORE}", "-c", CORE / "harlite_core.c"]
    compile_ok([*gnu, "-o", tmp_path / "gnu.o"])
    disassembly = run([tool("arm-none-eabi-objdump"), "-d", tmp_path / "gnu.o"]).stdout
    assert not re.search(r"\bv(fm|fnm)[as]\.f32", disassembly)

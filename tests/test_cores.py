"""The released model's C library (as ``harlite export`` writes it) running the firmware's per-sample path
(harlite.h: front end, C engine, smoothing; the '# pred' line) under QEMU on five CPU cores, on six
minutes of HAPT test subject 2: Cortex-M0 (microbit), Cortex-M4F (mps2-an386), Cortex-M7 (mps2-an500),
Cortex-M33 (mps2-an505) with arm-none-eabi-gcc and newlib, RV32IMC (riscv32 virt, the A, F and D
extensions off) with riscv64-unknown-elf-gcc and picolibc. Every '# pred' line equals
``harlite simulate --runtime c``; flash, RAM and instructions per window are measured alike on every core
(the Cortex-M4 within issue 14's limits). The five runs share one build of the library and run two at a
time (``harlite.pipeline.bench_firmware.measure_cores``, as ``harlite bench firmware`` does; the session fixture
``core_runs``, which tests/test_package.py compares an installed harlite's bench with).
"""

from __future__ import annotations

import pytest
from fixtures_firmware import RELEASED, SAMPLES, assert_pred_lines_equal_timeline, pred_fields
from tools import run, tool

from harlite.board.firmware import LIMITS_CORE, engine_limits
from harlite.board.toolchain import CORES
from harlite.bundle.loader import load_bundle

MACS = 706_800  # the released model's multiply-accumulates per window
# What each image must be built for: readelf's machine and the architecture attribute (RV32IMC: no A, F, D).
ARCH = {"cortex-m0": ("ARM", "Tag_CPU_arch: v6S-M\n"), "cortex-m4": ("ARM", "Tag_CPU_arch: v7E-M\n"),
        "cortex-m7": ("ARM", "Tag_CPU_arch: v7E-M\n"), "cortex-m33": ("ARM", "Tag_CPU_arch: v8-M.mainline\n"),
        "rv32imc": ("RISC-V", 'Tag_RISCV_arch: "rv32i2p1_m2p0_c2p0_zicsr2p0_zmmul1p0"\n')}  # fmt: skip
# QEMU's SysTick runs at the machine's processor clock (mps2: 25 MHz, an505: 20 MHz, nRF51: 16 MHz), one
# instruction a nanosecond with -icount shift=0; minstret counts instructions.
INSTRUCTIONS_PER_TICK = {"cortex-m0": 62.5, "cortex-m4": 40.0, "cortex-m7": 40.0, "cortex-m33": 50.0, "rv32imc": 1.0}


@pytest.mark.parametrize("core", list(CORES))
def test_core_prints_what_simulate_predicts(core: str, core_runs: dict, released_replay: dict) -> None:
    figures = dict(core_runs["runs"][core])
    lines, parts = figures.pop("pred_lines"), figures.pop("parts")
    assert_pred_lines_equal_timeline(lines, released_replay["timeline"])
    assert figures["samples"] == SAMPLES and figures["windows"] == len(lines) == 280 and figures["failed_windows"] == 0
    print(f"\n{core} ({' '.join(CORES[core].qemu[1:])}): {len(lines)} pred lines identical to simulate --runtime c; "
          f"flash {figures['flash_bytes']} B, RAM {figures['static_ram_bytes']} + {figures['stack_bytes']} B, "
          f"{figures['instructions_per_window']:,} instructions per window {figures['instructions']}")  # fmt: skip

    # The image is the core's, and the clock counted instructions as calibrated.
    machine, arch = ARCH[core]
    elf = core_runs["work"] / core / "run" / "run_pipeline.elf"
    readelf = tool(CORES[core].prefix + "readelf")
    assert f"Machine:                           {machine}" in run([readelf, "-h", elf]).stdout
    assert arch in run([readelf, "-A", elf]).stdout
    assert figures["calibration"]["instructions_per_tick"] == pytest.approx(INSTRUCTIONS_PER_TICK[core], rel=1e-5)

    # What is counted: the parts add up to the image, which holds the library and what the C library and
    # libgcc add for it, nothing of the driver, start-up code or stdio.
    assert sum(v["flash_bytes"] for v in parts.values()) == figures["flash_bytes"]
    assert sum(v["ram_bytes"] for v in parts.values()) == figures["static_ram_bytes"]
    engine = load_bundle(RELEASED).manifest["engine"]
    assert parts["engine model (weights)"]["flash_bytes"] > engine["weight_bytes"]
    assert parts["engine model (weights)"]["ram_bytes"] == engine["scratch_bytes"]
    assert parts["state"]["ram_bytes"] >= 2 * 128 * 9  # the front end's ring and the model's input
    assert 0 < figures["stack_bytes"] < 4096
    assert figures["ram_bytes"] == figures["static_ram_bytes"] + figures["stack_bytes"]
    assert figures["instructions"]["model"] > MACS  # at least one instruction per multiply-accumulate
    # invoke_ms: the model's instructions of the window at one a cycle of 64 MHz
    ms = {int(pred_fields(line)["invoke_ms"]) for line in lines}
    assert ms <= {int(figures["instructions"]["model"] / 64_000) + d for d in (-1, 0, 1)}
    if core == LIMITS_CORE:
        for key, limit in engine_limits(load_bundle(RELEASED).manifest).items():
            assert figures[key] <= limit, (key, figures[key], limit)

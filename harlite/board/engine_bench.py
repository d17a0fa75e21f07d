"""The engine on a Cortex-M4F: built with arm-none-eabi-gcc at -Os, run under QEMU's mps2-an386.

``run_cortex_m4`` gives the scores of int8 windows and the figures of the run: instructions per window
(QEMU ``-icount shift=0``, SysTick calibrated against a loop of known length), stack of one window
(painted). ``footprint`` gives the engine's flash and static RAM from the object files. ``bench``
puts them together for ``harlite bench``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harlite.board.sources import ARM_STARTUP
from harlite.board.toolchain import CORES, CORTEX_M4, ICOUNT, WARNINGS, object_size, run_tool, tool
from harlite.engine.generate import KERNELS_DIR, MODEL_C, Engine, generate
from harlite.errors import HarliteError

BENCH_C = KERNELS_DIR / "harlite_engine_bench.c"
FIGURES = re.compile(r"engine: windows=(\d+) ticks=(\d+) worst=(\d+) calibration_ticks=(\d+) "
                     r"calibration_instructions=(\d+) stack=(\d+) scratch=(\d+)")  # fmt: skip
M4_FLAGS = ("-std=c99", *CORTEX_M4, "-Os", "-ffunction-sections", "-fdata-sections", *WARNINGS)
M4 = CORES["cortex-m4"]


def write_sources(engine: Engine, folder: Path) -> list[Path]:
    """The engine's files in ``folder``; returns its C sources."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in engine.files.items():
        (folder / name).write_text(text)
    return [folder / name for name in engine.files if name.endswith(".c")]


def build_cortex_m4(engine: Engine, folder: Path, portable: bool = False) -> Path:
    """The bench driver and the engine linked for QEMU's mps2-an386 (newlib, semihosting)."""
    sources = write_sources(engine, folder)
    defines = ["-DHARLITE_ENGINE_PORTABLE"] if portable else []
    elf = folder / ("engine_portable.elf" if portable else "engine.elf")
    run_tool([tool("arm-none-eabi-gcc"), *M4_FLAGS, *defines, f"-I{folder}", ARM_STARTUP, *sources, BENCH_C,
              *M4.link_flags(), *M4.run_libs, "-Wl,--gc-sections", "-o", elf])  # fmt: skip
    return elf


def run_cortex_m4(engine: Engine, windows: np.ndarray, portable: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Scores (n, classes) int8 of int8 windows (n, window, channels) on the emulated Cortex-M4, and the
    run's figures (instructions per window: mean and worst; the calibration; stack bytes)."""
    windows = np.ascontiguousarray(windows, np.int8)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        elf = build_cortex_m4(engine, folder, portable)
        windows.tofile(folder / "input_int8.bin")
        text = run_tool([*M4.emulator(), *ICOUNT, "-kernel", elf], cwd=folder)
        scores = np.fromfile(folder / "output_int8.bin", np.int8).reshape(-1, engine.classes)
    match = FIGURES.search(text)
    if not match:
        raise HarliteError(f"the Cortex-M4 run printed no figures: {text[-400:]}")
    n, ticks, worst, cal_ticks, cal_instr, stack, scratch = (int(v) for v in match.groups())
    per_tick = cal_instr / cal_ticks
    return scores, {
        "windows": n,
        "instructions_per_window": round(ticks * per_tick / max(n, 1)),
        "instructions_worst_window": round(worst * per_tick),
        "calibration": {
            "loop_instructions": cal_instr,
            "systick_ticks": cal_ticks,
            "instructions_per_tick": per_tick,
        },  # fmt: skip
        "stack_bytes": stack,
        "scratch_bytes": scratch,
        "path": "portable C" if portable else "DSP (SMLAD)",
    }


def footprint(engine: Engine, portable: bool = False) -> dict[str, int]:
    """Flash and static RAM of the engine for Cortex-M4 at -Os (arm-none-eabi-size of its objects):
    the kernels' code, the model's file (weights, parameters, op sequence), the scratch buffer."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources = write_sources(engine, folder)
        defines = ["-DHARLITE_ENGINE_PORTABLE"] if portable else []
        sizes = {}
        for source in sources:
            obj = folder / f"{source.stem}.o"
            run_tool([tool("arm-none-eabi-gcc"), *M4_FLAGS, *defines, f"-I{folder}", "-c", source, "-o", obj])
            sizes[source.name] = object_size(obj)
    model, kernels = sizes[MODEL_C], sizes["harlite_engine_kernels.c"]
    return {
        "flash_bytes": sum(s["text"] + s["data"] for s in sizes.values()),
        "code_bytes": kernels["text"] + kernels["data"],
        "model_bytes": model["text"] + model["data"],
        "weight_bytes": engine.weight_bytes,
        "ram_bytes": sum(s["data"] + s["bss"] for s in sizes.values()),
        "scratch_bytes": engine.scratch_bytes,
    }


def bench(model: bytes | Engine, windows: np.ndarray | None = None, seed: int = 0) -> dict[str, Any]:
    """The engine's figures on the emulated Cortex-M4 for ``harlite bench``: instructions per window on
    the DSP and the portable path, flash, static RAM and stack; ``windows`` (int8) defaults to 8 random
    ones. Both paths must give the same scores."""
    engine = model if isinstance(model, Engine) else generate(model)
    if windows is None:
        rng = np.random.default_rng(seed)
        windows = rng.integers(-128, 128, (8, engine.window, engine.channels)).astype(np.int8)
    dsp_scores, dsp = run_cortex_m4(engine, windows)
    portable_scores, portable = run_cortex_m4(engine, windows, portable=True)
    if not np.array_equal(dsp_scores, portable_scores):
        raise HarliteError("the C engine's DSP and portable paths disagree on the Cortex-M4: a bug to report.")
    size = footprint(engine)
    return {
        "instructions_per_window": dsp["instructions_per_window"],
        "instructions_worst_window": dsp["instructions_worst_window"],
        "instructions_per_window_portable": portable["instructions_per_window"],
        "instructions_per_mac": dsp["instructions_per_window"] / max(engine.macs, 1),
        "macs_per_window": engine.macs,
        "stack_bytes": dsp["stack_bytes"],
        "ram_bytes": size["ram_bytes"] + dsp["stack_bytes"],
        **{k: v for k, v in size.items() if k != "ram_bytes"},
        "static_ram_bytes": size["ram_bytes"],
        "calibration": dsp["calibration"],
        "windows": dsp["windows"],
        "measured_with": "arm-none-eabi-gcc -Os -mcpu=cortex-m4, QEMU mps2-an386 -icount shift=0",
    }

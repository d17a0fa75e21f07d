"""The firmware's portable part measured with the real cross compiler and QEMU: flash, RAM, stack and
instructions per window on a Cortex-M4, and the '# pred' lines it prints for a recording.

Two builds of the same pipeline (harlite/board/c/harlite_pipeline.h): ``engine_build`` (harlite's C engine,
the bundle's ``engine/`` folder) and ``tflm_build`` (TFLite Micro, from the Arduino library's sources, which
harlite does not ship). For each:

- ``size_image``: the portable part linked alone for the Cortex-M4 at -Os (every function the sketch calls
  kept as a root, the sketch's state as a probe, no start-up code, vector table or stdio): flash is its
  text + data, static RAM its data + bss, with what newlib and libgcc add for it; parts from the map.
- ``run_image`` + ``run_qemu``: the pipeline driven by harlite/board/qemu/run_pipeline.c on a recording's
  samples under QEMU's mps2-an386 (semihosting), ``-icount shift=0``: the pred lines, instructions per
  window (SysTick calibrated on a loop of known length) and the stack (painted below the driver's frame).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harlite.board.sources import C_DIR, CORE_SOURCES, RUN_C, STARTUP, TFLM_GLUE
from harlite.board.toolchain import CORTEX_M4, ICOUNT, M4_C, M4_CXX, QEMU, WARNINGS, object_size, run_tool, tool
from harlite.bundle.loader import Bundle
from harlite.errors import HarliteError

SAMPLES_FILE = "raw_f32.bin"
# What the sketch calls and keeps, which the size image keeps: the pipeline's functions, and its state
# besides the model's, the pipeline and one line buffer (STATE; the banner is formatted on the stack).
PIPELINE_ROOTS = ("harlite_pipeline_init", "harlite_pipeline_push", "harlite_pipeline_gap", "harlite_pipeline_invoke",
                  "harlite_pipeline_report", "harlite_format_sample", "harlite_format_banner", "pipeline", "line")  # fmt: skip
STATE = '#include "harlite_pipeline.h"\nharlite_pipeline_t pipeline;\nchar line[HARLITE_LINE_MAX];\n'
FIGURES = re.compile(r"^figures: (.*)$", re.MULTILINE)
# Where the Arduino library's TFLM sources are: its checkout (the folder with library.properties).
TFLM_LIBRARY_ENV = "HARLITE_TFLM_ARDUINO"
# Not compiled from it: the Arduino-only parts (peripherals, serial test harness, the board's setup and log)
# and the audio front end the model does not use.
TFLM_SKIP = ("src/peripherals/", "src/test_over_serial/", "src/tensorflow/lite/experimental/",
             "src/third_party/kissfft/", "src/tensorflow/lite/micro/system_setup.cpp")  # fmt: skip
# Limits of the engine path for the released model (issue 14).
ENGINE_LIMITS = {"flash_bytes": 40 * 1024, "ram_bytes": 6 * 1024, "instructions_per_window": 1_500_000}


def core_footprint(header_dir: str | Path) -> dict[str, int]:
    """Flash and RAM of the core built for Cortex-M4 at -Os against ``header_dir``'s model config.

    RAM counts the core's static data and the state a sketch keeps (one front end, one smoother);
    ``stack_bytes`` is the deepest frame GCC reports. The serial-line formatter is measured apart.
    """
    gcc = tool("arm-none-eabi-gcc")
    flags = ["-std=c99", *CORTEX_M4, "-Os", *WARNINGS, f"-I{header_dir}", f"-I{C_DIR}", "-c"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for source in CORE_SOURCES[:2]:
            run_tool([gcc, *flags, "-fstack-usage", source, "-o", out / f"{source.stem}.o"])
        probe = out / "state.c"
        probe.write_text('#include "harlite_core.h"\nharlite_frontend_t fe;\nharlite_smoother_t sm;\n')
        run_tool([gcc, *flags, probe, "-o", out / "state.o"])
        core, serial, state = (object_size(out / f"{n}.o") for n in ("harlite_core", "harlite_serial", "state"))
        frames = (out / "harlite_core.su").read_text().splitlines()
        stack = max(int(line.split("\t")[1]) for line in frames)
    return {
        "flash_bytes": core["text"] + core["data"],
        "ram_bytes": core["data"] + core["bss"] + state["bss"],
        "state_bytes": state["bss"],
        "stack_bytes": stack,
        "serial_flash_bytes": serial["text"] + serial["data"],
    }


@dataclass
class Build:
    """One firmware build: what is compiled for it, and what its size image keeps."""

    c_sources: list[Path]
    cxx_sources: list[Path] = field(default_factory=list)
    objects: list[Path] = field(default_factory=list)  # compiled already (the TFLM library)
    includes: list[Path] = field(default_factory=list)
    system_includes: list[Path] = field(default_factory=list)  # third-party headers: their warnings are theirs
    defines: list[str] = field(default_factory=list)
    roots: tuple[str, ...] = PIPELINE_ROOTS
    state: str = STATE
    parts: tuple[tuple[str, str], ...] = ()  # (part, substring of an object's file name) for the breakdown

    def flags(self) -> list[str]:
        return ([f"-I{d}" for d in self.includes] + [f"-isystem{d}" for d in self.system_includes]
                + self.defines)  # fmt: skip


def engine_build(bundle: Bundle) -> Build:
    """The pipeline with harlite's C engine: the bundle's harlite_model_config.h and engine sources (as
    ``harlite.bundle`` verifies them)."""
    kernels, model = bundle.path("engine_kernels"), bundle.path("engine_model")
    return Build(
        c_sources=[*CORE_SOURCES, C_DIR / "harlite.c", kernels, model],
        includes=[bundle.path("tflm_config").parent, bundle.path("engine_header").parent, C_DIR],
        roots=(*PIPELINE_ROOTS, "harlite_engine_invoke", "model_input", "model_output"),
        state=STATE + "int8_t model_input[HARLITE_WINDOW_BYTES], model_output[HARLITE_NUM_CLASSES];\n",
        parts=(("engine kernels", kernels.stem), ("engine model (weights)", model.stem)),
    )


def tflm_build(bundle: Bundle, library: str | Path, work: Path) -> Build:
    """The pipeline with TFLite Micro from the Arduino library checkout ``library`` (compiled into ``work``),
    the bundle's TFLM sources (model array, op resolver, arena size) and harlite/board/tflm/tflm_model.cc."""
    library = Path(library)
    if not (library / "library.properties").exists() or not (library / "src" / "tensorflow").is_dir():
        raise HarliteError(f"{library} is not the Arduino TFLM library: point {TFLM_LIBRARY_ENV} at a checkout of "
                           "github.com/tensorflow/tflite-micro-arduino-examples (the folder with library.properties).")  # fmt: skip
    src = library / "src"
    sources = sorted(p for p in src.rglob("*") if p.suffix in (".c", ".cpp")
                     and not any(p.relative_to(library).as_posix().startswith(s) for s in TFLM_SKIP))  # fmt: skip
    objects = _compile_all(sources, [f"-isystem{src}"], work, library)
    return Build(
        c_sources=list(CORE_SOURCES),
        cxx_sources=[TFLM_GLUE / "tflm_model.cc", bundle.path("tflm_model_data")],
        objects=objects,
        includes=[bundle.path("tflm_config").parent, bundle.path("tflm_op_resolver").parent,
                  bundle.path("tflm_model_header").parent, C_DIR, TFLM_GLUE],  # fmt: skip
        system_includes=[src],
        defines=["-DHARLITE_TFLM"],
        roots=(*PIPELINE_ROOTS, "harlite_tflm_init", "harlite_tflm_invoke"),
        parts=(("model array", "harlite_model_data"), ("TFLM glue", "tflm_model"), ("CMSIS-NN", "third_party__cmsis_nn"),
               ("TFLM kernels", "micro__kernels"), ("TFLM framework", "src__")),
    )  # fmt: skip


def _object_name(source: Path, root: Path) -> str:
    return source.relative_to(root).as_posix().replace("/", "__") + ".o"


def _compile_all(sources: list[Path], flags: list[str], work: Path, root: Path) -> list[Path]:
    """Compile C and C++ ``sources`` (paths under ``root``) for the Cortex-M4, in parallel, into ``work``."""
    work.mkdir(parents=True, exist_ok=True)

    def one(source: Path) -> Path:
        obj = work / _object_name(source, root)
        c = source.suffix == ".c"
        run_tool([tool("arm-none-eabi-gcc" if c else "arm-none-eabi-g++"), *(M4_C if c else M4_CXX), *flags, "-c", source,
              "-o", obj])  # fmt: skip
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(one, sources))


def _objects(build: Build, work: Path, extra_c: Iterable[Path] = ()) -> list[Path]:
    """The build's own sources (and ``extra_c``) compiled into ``work``, every warning an error, then its
    precompiled objects."""
    work.mkdir(parents=True, exist_ok=True)
    objs = []
    for source in [*build.c_sources, *extra_c]:
        objs.append(work / f"{source.stem}.o")
        run_tool([tool("arm-none-eabi-gcc"), *M4_C, *WARNINGS, *build.flags(), "-c", source, "-o", objs[-1]])
    for source in build.cxx_sources:
        objs.append(work / f"{source.stem}.o")
        run_tool([tool("arm-none-eabi-g++"), *M4_CXX, *WARNINGS, *build.flags(), "-c", source, "-o", objs[-1]])
    return objs + build.objects


def _linker(build: Build) -> str:
    return tool("arm-none-eabi-g++" if build.cxx_sources else "arm-none-eabi-gcc")


def size_image(build: Build, work: Path) -> dict[str, Any]:
    """Flash and static RAM of the portable part linked alone (see the module docstring), by part."""
    probe = work / "state.c"
    work.mkdir(parents=True, exist_ok=True)
    probe.write_text(build.state)
    objs = _objects(build, work, [probe])
    elf, map_file = work / "size.elf", work / "size.map"
    roots = [f"-Wl,--require-defined={name}" for name in build.roots]
    # No start files: __dso_handle (crtbegin's marker for C++ static destructors) is an address, no bytes;
    # the system calls newlib's stdio would need (TFLM's assert prints) are nosys stubs.
    run_tool([_linker(build), *CORTEX_M4, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
          "-Wl,--defsym=__dso_handle=0", "-Wl,--gc-sections", f"-Wl,--entry={build.roots[0]}", *roots, "-T",
          STARTUP / "mps2_an386.ld", f"-Wl,-Map={map_file}", *objs, "-o", elf])  # fmt: skip
    total = object_size(elf)
    parts = _map_parts(map_file.read_text(), (("pipeline state", "state.o"), ("front end", "harlite_core.o"),
                       ("serial lines", "harlite_serial.o"), ("pipeline", "harlite_pipeline.o"), *build.parts))  # fmt: skip
    return {"flash_bytes": total["text"] + total["data"], "static_ram_bytes": total["data"] + total["bss"],
            "parts": parts}  # fmt: skip


_OUTPUT_SECTION = re.compile(r"^(\.[\w.]+)(?:\s+0x[0-9a-f]+\s+0x[0-9a-f]+(?: load address 0x[0-9a-f]+)?)?\s*$")
_INPUT = re.compile(r"^ (?:\*fill\*|[\w.*]+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)(?:\s+(\S.*?))?\s*$")
_FLASH, _RAM = (".text", ".ARM.exidx", ".ARM.extab", ".init_array", ".data"), (".data", ".bss")


def _map_parts(text: str, parts: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """Flash and RAM bytes per part of a GNU ld map: the first part whose key is in an input file's name;
    library members are the C/C++ runtime, the rest (alignment padding) "other". Merged string sections
    overlap in the map: each byte counts once, for the first input section that holds it."""
    parts = list(parts)
    pieces: list[tuple[str, int, int, str]] = []  # output section, address, size, input file name
    section, pending = None, ""
    for line in text.split("Linker script and memory map", 1)[-1].splitlines():
        out = _OUTPUT_SECTION.match(line)
        if out:
            section = out.group(1)
            continue
        if line.startswith(" .") and len(line.split()) == 1:  # an input section name; its figures follow
            pending = line
            continue
        match = _INPUT.match(pending + line if pending and line.startswith(" ") else line)
        pending = ""
        if match and section in _FLASH + _RAM and not line.lstrip().startswith(("*(", "PROVIDE", "LOAD")):
            origin = (match.group(3) or "").rsplit("/", 1)[-1]
            pieces.append((section, int(match.group(1), 16), int(match.group(2), 16), origin))
    result: dict[str, dict[str, int]] = {}
    covered: dict[str, int] = {}
    for section, address, size, origin in sorted(pieces):
        start = max(address, covered.get(section, 0))
        if address + size <= start:
            continue
        covered[section] = address + size
        name = next((part for part, key in parts if key in origin),
                    "C/C++ runtime (newlib, libgcc)" if ".a(" in origin else "other")  # fmt: skip
        entry = result.setdefault(name, {"flash_bytes": 0, "ram_bytes": 0})
        entry["flash_bytes"] += address + size - start if section in _FLASH else 0
        entry["ram_bytes"] += address + size - start if section in _RAM else 0
    return result


def run_image(build: Build, work: Path) -> Path:
    """The pipeline driver (harlite/board/qemu/run_pipeline.c) linked for QEMU's mps2-an386 with newlib's
    semihosting (rdimon)."""
    objs = _objects(build, work, [STARTUP / "startup.c", RUN_C])
    elf = work / "run_pipeline.elf"
    run_tool([_linker(build), *CORTEX_M4, "--specs=rdimon.specs", "-Wl,--gc-sections", "-T", STARTUP / "mps2_an386.ld",
          *objs, "-o", elf])  # fmt: skip
    return elf


def run_pipeline(command: list[Any], raw: np.ndarray, work: Path) -> tuple[list[str], dict[str, Any]]:
    """Run a pipeline driver (``command``, in ``work``) on raw samples (n, raw channels): its '# pred' lines
    and its figures, with instructions where the driver ran under QEMU -icount (see run_pipeline.c)."""
    np.ascontiguousarray(raw, "<f4").tofile(work / SAMPLES_FILE)
    done = subprocess.run([str(c) for c in command], cwd=work, capture_output=True, timeout=600, check=False,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    text = done.stdout.decode("utf-8", "replace")
    match = FIGURES.search(text)
    if done.returncode or not match:
        raise HarliteError(f"the pipeline run failed ({done.returncode}): {(text + done.stderr.decode())[-800:]}")
    raw_figures = {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return [line for line in text.splitlines() if line.startswith("# pred")], _figures(raw_figures)


def _figures(f: dict[str, int]) -> dict[str, Any]:
    """The driver's counts as instructions per window (mean over windows) and bytes."""
    windows = max(f["windows"], 1)
    per_tick = f["calibration_instructions"] / max(f["calibration_ticks"], 1)

    def per_window(ticks: int) -> int:
        return round(ticks * per_tick / windows)

    parts = {"front_end_and_smoothing": per_window(f["push_ticks"] - f["model_ticks"]),
             "model": per_window(f["model_ticks"]), "pred_line": per_window(f["report_ticks"])}  # fmt: skip
    return {
        "samples": f["samples"],
        "windows": f["windows"],
        "failed_windows": f["failed"],
        "instructions_per_window": sum(parts.values()),
        "instructions": parts,
        "model_instructions_worst_window": round(f["model_worst_ticks"] * per_tick),
        "sample_lines_instructions_per_window": per_window(f["sample_line_ticks"]),
        "stack_bytes": f["stack"],
        "calibration": {"loop_instructions": f["calibration_instructions"], "systick_ticks": f["calibration_ticks"],
                        "instructions_per_tick": per_tick},  # fmt: skip
    }


def measure(build: Build, raw: np.ndarray, work: Path) -> dict[str, Any]:
    """A build's figures on the emulated Cortex-M4: the size image's flash and static RAM, the run's
    instructions per window and stack; RAM = static + stack. Also returns the run's pred lines."""
    size = size_image(build, work / "size")
    elf = run_image(build, work / "run")
    lines, run = run_pipeline([tool("qemu-system-arm"), *QEMU, *ICOUNT, "-kernel", elf], raw, work / "run")
    return {
        "flash_bytes": size["flash_bytes"],
        "ram_bytes": size["static_ram_bytes"] + run["stack_bytes"],
        "static_ram_bytes": size["static_ram_bytes"],
        **run,
        "parts": size["parts"],
        "pred_lines": lines,
    }

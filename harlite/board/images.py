"""Images of a firmware build for one CPU core, and what they measure.

- ``size_image``: the portable part linked alone at -Os (every function a program calls kept as a root,
  its state as a probe, no start-up code, vector table or stdio): flash is its text + data, static RAM its
  data + bss, with what the C library and libgcc add for it; the parts from the linker map.
- ``run_image`` + ``run_pipeline``: qemu/run_pipeline.c linked with the core's start-up code and
  semihosting C library, run under QEMU ``-icount shift=0`` on a recording's samples: the '# pred' lines,
  instructions per window (the core's clock calibrated on a loop of known length) and the stack (painted).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harlite.board.sources import ARM_STARTUP, RUN_C
from harlite.board.toolchain import ICOUNT, M4_CXX, SECTIONS, WARNINGS, Core, object_size, run_tool
from harlite.errors import HarliteError

SAMPLES_FILE = "raw_f32.bin"
FIGURES = re.compile(r"^figures: (.*)$", re.MULTILINE)


@dataclass
class Build:
    """One firmware build: what is compiled for it, and what its size image keeps."""

    c_sources: list[Path]
    roots: tuple[str, ...]  # the functions and state a program keeps
    state: str  # C defining that state (the size image's probe)
    cxx_sources: list[Path] = field(default_factory=list)
    objects: list[Path] = field(default_factory=list)  # compiled already (the TFLM library)
    includes: list[Path] = field(default_factory=list)
    system_includes: list[Path] = field(default_factory=list)  # third-party headers: their warnings are theirs
    defines: list[str] = field(default_factory=list)
    parts: tuple[tuple[str, str], ...] = ()  # (part, substring of an object's file name) for the breakdown

    def flags(self) -> list[str]:
        return ([f"-I{d}" for d in self.includes] + [f"-isystem{d}" for d in self.system_includes]
                + self.defines)  # fmt: skip


def c_flags(core: Core) -> list[str]:
    """How harlite compiles the portable C for ``core``: C99, -Os, every warning an error."""
    return ["-std=c99", *core.cpu, "-Os", *SECTIONS, *WARNINGS]


def _objects(build: Build, core: Core, work: Path, extra_c: Iterable[Path] = ()) -> list[Path]:
    """The build's own sources (and ``extra_c``) compiled for ``core`` into ``work``, then its precompiled
    objects."""
    work.mkdir(parents=True, exist_ok=True)
    objs = []
    for source in [*build.c_sources, *extra_c]:
        objs.append(work / f"{source.stem}.o")
        run_tool([core.tool("gcc"), *c_flags(core), *build.flags(), "-c", source, "-o", objs[-1]])
    for source in build.cxx_sources:
        objs.append(work / f"{source.stem}.o")
        run_tool([core.tool("g++"), *M4_CXX, *WARNINGS, *build.flags(), "-c", source, "-o", objs[-1]])
    return objs + build.objects


def _linker(build: Build, core: Core) -> str:
    return core.tool("g++" if build.cxx_sources else "gcc")


def size_image(build: Build, core: Core, work: Path) -> dict[str, Any]:
    """Flash and static RAM of the portable part linked alone (see the module docstring), by part."""
    probe = work / "state.c"
    work.mkdir(parents=True, exist_ok=True)
    probe.write_text(build.state)
    objs = _objects(build, core, work, [probe])
    elf, map_file = work / "size.elf", work / "size.map"
    roots = [f"-Wl,--require-defined={name}" for name in build.roots]
    # No start files: __dso_handle (crtbegin's marker for C++ static destructors) is an address, no bytes;
    # the system calls newlib's stdio would need (TFLM's assert prints) are nosys stubs.
    run_tool([_linker(build, core), *core.link_flags(), "-nostartfiles", *core.bare_libs, "-Wl,--defsym=__dso_handle=0",
              "-Wl,--gc-sections", f"-Wl,--entry={build.roots[0]}", *roots, f"-Wl,-Map={map_file}", *objs, "-o", elf])  # fmt: skip
    total = object_size(elf, core.prefix + "size")
    parts = _map_parts(map_file.read_text(), (("state", "state.o"), *build.parts))
    return {"flash_bytes": total["text"] + total["data"], "static_ram_bytes": total["data"] + total["bss"],
            "parts": parts}  # fmt: skip


_OUTPUT_SECTION = re.compile(r"^(\.[\w.]+)(?:\s+0x[0-9a-f]+\s+0x[0-9a-f]+(?: load address 0x[0-9a-f]+)?)?\s*$")
_INPUT = re.compile(r"^ (?:\*fill\*|[\w.*]+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)(?:\s+(\S.*?))?\s*$")
# Output sections in flash and in RAM (.data and .tdata in both: loaded from flash), Arm's and picolibc's.
_FLASH = (".init", ".text", ".ARM.exidx", ".ARM.extab", ".init_array", ".data", ".tdata")
_RAM = (".data", ".tdata", ".tbss", ".bss")


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
                    "C/C++ runtime (C library, libgcc)" if ".a(" in origin else "other")  # fmt: skip
        entry = result.setdefault(name, {"flash_bytes": 0, "ram_bytes": 0})
        entry["flash_bytes"] += address + size - start if section in _FLASH else 0
        entry["ram_bytes"] += address + size - start if section in _RAM else 0
    return result


def run_image(build: Build, core: Core, work: Path) -> Path:
    """qemu/run_pipeline.c with the build, the core's start-up code and its semihosting C library."""
    startup = [ARM_STARTUP] if core.prefix.startswith("arm") else []  # picolibc's crt0 starts RISC-V
    objs = _objects(build, core, work, [*startup, RUN_C])
    elf = work / "run_pipeline.elf"
    run_tool([_linker(build, core), *core.link_flags(), *core.run_libs, "-Wl,--gc-sections", *objs, "-o", elf])
    return elf


def run_pipeline(
    command: list[Any], raw: np.ndarray, work: Path, timeout: float = 900
) -> tuple[list[str], dict[str, Any]]:
    """Run a pipeline driver (``command``, in ``work``) on raw samples (n, raw channels): its '# pred' lines
    and its figures, with instructions where the driver ran under QEMU -icount (see run_pipeline.c)."""
    np.ascontiguousarray(raw, "<f4").tofile(work / SAMPLES_FILE)
    # stderr too: QEMU writes picolibc's semihosting console there
    done = subprocess.run([str(c) for c in command], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    text = done.stdout.decode("utf-8", "replace")
    match = FIGURES.search(text)
    if done.returncode or not match:
        raise HarliteError(f"the pipeline run failed ({done.returncode}): {text[-800:]}")
    raw_figures = {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return [line for line in text.splitlines() if line.startswith("# pred")], _figures(raw_figures)


def run_qemu(build: Build, core: Core, raw: np.ndarray, work: Path) -> tuple[list[str], dict[str, Any]]:
    """``run_image`` under the core's QEMU machine with -icount shift=0: the pred lines and figures."""
    elf = run_image(build, core, work)
    return run_pipeline([*core.emulator(), *ICOUNT, "-kernel", elf], raw, work)


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
        "calibration": {
            "loop_instructions": f["calibration_instructions"],
            "clock_ticks": f["calibration_ticks"],
            "instructions_per_tick": per_tick,
        },  # fmt: skip
    }

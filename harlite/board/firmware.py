"""The firmware's portable part measured with the real cross compilers and QEMU: flash, RAM, stack and
instructions per window on each core of ``harlite.board.toolchain.CORES``, and the '# pred' lines it
prints for a recording.

Two builds of the same per-sample path (harlite/board/c/harlite_pipeline.h): ``engine_build`` (the model's
C library as ``harlite export`` writes it: the API harlite.h over the pipeline and harlite's C engine)
and ``tflm_build`` (the pipeline with TFLite Micro from the Arduino library's sources, which harlite does
not ship; Cortex-M4 only). ``measure`` gives a build's figures on a core (``harlite.board.images``).
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from harlite.board.images import Build, run_qemu, size_image
from harlite.board.library import library_files, library_sources
from harlite.board.sources import C_DIR, CORE_SOURCES, TFLM_GLUE
from harlite.board.toolchain import CORES, CORTEX_M4, M4_C, M4_CXX, WARNINGS, Core, object_size, run_tool, tool
from harlite.bundle.loader import Bundle
from harlite.errors import HarliteError
from harlite.io.files import atomic_write_text

# What a program using harlite.h calls and keeps, which the size image keeps: the API's functions and the
# serial lines', one stream (harlite_t) and one line buffer (the banner is formatted on the stack).
API_ROOTS = ("harlite_init", "harlite_push", "harlite_gap", "harlite_reset", "harlite_label", "harlite_format_sample",
             "harlite_format_prediction", "harlite_format_banner", "har", "line")  # fmt: skip
API_STATE = '#include "harlite.h"\nharlite_t har;\nchar line[HARLITE_LINE_MAX];\n'
# What the sketch's TFLM path calls and keeps: the pipeline's functions, the pipeline and one line buffer.
PIPELINE_ROOTS = ("harlite_pipeline_init", "harlite_pipeline_push", "harlite_pipeline_gap", "harlite_pipeline_invoke",
                  "harlite_pipeline_report", "harlite_format_sample", "harlite_format_banner", "pipeline", "line")  # fmt: skip
PIPELINE_STATE = '#include "harlite_pipeline.h"\nharlite_pipeline_t pipeline;\nchar line[HARLITE_LINE_MAX];\n'
LIBRARY_PARTS = (("front end", "harlite_core.o"), ("serial lines", "harlite_serial.o"), ("pipeline", "harlite_pipeline.o"),
                 ("API", "harlite.o"), ("engine kernels", "harlite_engine_kernels.o"),
                 ("engine model (weights)", "harlite_engine_model.o"))  # fmt: skip
# Where the Arduino library's TFLM sources are: its checkout (the folder with library.properties).
TFLM_LIBRARY_ENV = "HARLITE_TFLM_ARDUINO"
# Not compiled from it: the Arduino-only parts (peripherals, serial test harness, the board's setup and log)
# and the audio front end the model does not use.
TFLM_SKIP = ("src/peripherals/", "src/test_over_serial/", "src/tensorflow/lite/experimental/",
             "src/third_party/kissfft/", "src/tensorflow/lite/micro/system_setup.cpp")  # fmt: skip
# Limits of the engine path for the released model on the Cortex-M4 (issue 14).
ENGINE_LIMITS = {"flash_bytes": 40 * 1024, "ram_bytes": 6 * 1024, "instructions_per_window": 1_500_000}
LIMITS_CORE = "cortex-m4"
# The unknown decision (issue 20) runs on every window after the model: 26,100 instructions on the Cortex-M4 for
# the released model (58 features, 1,711 multiply-accumulates in 64 bits, the window's sums); allowed on top.
UNKNOWN_DECISION_INSTRUCTIONS = 30_000


def engine_limits(manifest: dict[str, Any]) -> dict[str, int]:
    """ENGINE_LIMITS for a bundle: with an unknown decision, its instructions allowed on top of the model's."""
    extra = UNKNOWN_DECISION_INSTRUCTIONS if "unknown" in manifest else 0
    return {**ENGINE_LIMITS, "instructions_per_window": ENGINE_LIMITS["instructions_per_window"] + extra}
# The unknown decision's symbols in harlite_core.o: its function and its tables.
UNKNOWN_SYMBOLS = ("harlite_unknown_decide", "unknown_", "log_p")


def core_footprint(header_dir: str | Path) -> dict[str, int]:
    """Flash and RAM of the core built for Cortex-M4 at -Os against ``header_dir``'s model config.

    ``unknown_flash_bytes`` is the part of the flash the unknown decision takes (its code and the model's
    tables: whitening rows, class means, the log table), which grows with the model's hidden vector.

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
        symbols = run_tool([tool("arm-none-eabi-nm"), "-S", out / "harlite_core.o"]).splitlines()
        decision = sum(
            int(f[1], 16) for f in map(str.split, symbols) if len(f) == 4 and f[3].startswith(UNKNOWN_SYMBOLS)
        )
    return {
        "flash_bytes": core["text"] + core["data"],
        "unknown_flash_bytes": decision,
        "ram_bytes": core["data"] + core["bss"] + state["bss"],
        "state_bytes": state["bss"],
        "stack_bytes": stack,
        "serial_flash_bytes": serial["text"] + serial["data"],
    }


def write_library(bundle: Bundle, folder: Path) -> list[Path]:
    """The model's C library (``harlite.board.library``) written into ``folder``; returns its C sources."""
    files = library_files(bundle)
    for name, text in files.items():
        atomic_write_text(folder / name, text)
    return [folder / name for name in library_sources(files)]


def engine_build(bundle: Bundle, folder: Path) -> Build:
    """The model's C library, written into ``folder``, as a program using harlite.h keeps it."""
    return Build(c_sources=write_library(bundle, folder), includes=[folder], roots=API_ROOTS, state=API_STATE,
                 parts=LIBRARY_PARTS)  # fmt: skip


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
        roots=(*PIPELINE_ROOTS, "harlite_tflm_init", "harlite_tflm_invoke",
               *(("harlite_tflm_invoke_features", "harlite_pipeline_features") if "unknown" in bundle.manifest else ())),
        state=PIPELINE_STATE,
        cxx_sources=[TFLM_GLUE / "tflm_model.cc", bundle.path("tflm_model_data")],
        objects=objects,
        includes=[bundle.path("tflm_config").parent, bundle.path("tflm_op_resolver").parent,
                  bundle.path("tflm_model_header").parent, C_DIR, TFLM_GLUE],  # fmt: skip
        system_includes=[src],
        defines=["-DHARLITE_TFLM"],
        parts=(*LIBRARY_PARTS[:3], ("model array", "harlite_model_data"), ("TFLM glue", "tflm_model"), ("CMSIS-NN", "third_party__cmsis_nn"),
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


def measure(build: Build, raw: np.ndarray, work: Path, core: Core | str = LIMITS_CORE) -> dict[str, Any]:
    """A build's figures on an emulated ``core``: the size image's flash and static RAM, the run's
    instructions per window and stack; RAM = static + stack. Also returns the run's pred lines."""
    core = CORES[core] if isinstance(core, str) else core
    size = size_image(build, core, work / "size")
    lines, run = run_qemu(build, core, raw, work / "run")
    return {
        "flash_bytes": size["flash_bytes"],
        "ram_bytes": size["static_ram_bytes"] + run["stack_bytes"],
        "static_ram_bytes": size["static_ram_bytes"],
        **run,
        "parts": size["parts"],
        "pred_lines": lines,
    }

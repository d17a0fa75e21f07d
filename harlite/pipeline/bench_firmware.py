"""The firmware section of ``harlite bench``: the firmware's per-sample path measured alike on every core of
``harlite.board.toolchain.CORES`` with harlite's C engine (the model's C library as ``harlite export``
writes it) and, on the Cortex-M4 given the Arduino library's sources, with TFLite Micro; on the bundle's
first test recording."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from harlite.board.firmware import (
    ENGINE_LIMITS,
    LIMITS_CORE,
    TFLM_LIBRARY_ENV,
    core_footprint,
    engine_build,
    engine_limits,
    measure,
    tflm_build,
)
from harlite.board.toolchain import CORES, version
from harlite.bundle.loader import Bundle
from harlite.run.simulate import bundle_subjects, load_recordings

BENCH_SECONDS = 360.0


def bench_recording(bundle: Bundle, seconds: float = BENCH_SECONDS) -> tuple[str, np.ndarray]:
    """The samples the firmware bench replays: the first ``seconds`` of the bundle's first test recording
    (HAPT test subject 2's first for the released bundle), with the bundle's raw sensors; and its name."""
    dataset, subjects = bundle_subjects(bundle, "test")
    rec = load_recordings(dataset=dataset, subjects=subjects[:1], manifest=bundle.manifest)[0]
    spec = bundle.frontend()
    rec = rec.with_raw_channels(spec.raw_channels)
    n = min(len(rec), round(seconds * spec.rate_hz))
    return f"{rec.source}, first {n} samples", rec.samples[:n]


def measure_cores(bundle: Bundle, raw: np.ndarray, work: Path, cores: tuple[str, ...] = tuple(CORES)) -> dict[str, Any]:
    """The engine path's figures (``harlite.board.firmware.measure``, pred lines included) on each core, two
    cores at a time; the library is written once."""
    build = engine_build(bundle, work / "library")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {name: pool.submit(measure, build, raw, work / name, name) for name in cores}
        return {name: run.result() for name, run in runs.items()}


def bench(bundle: Bundle, library: str | Path | None = None) -> dict[str, Any]:
    """The firmware section of ``harlite bench``: the engine path on every core and, given the Arduino
    library's sources (``library``, default the folder in $HARLITE_TFLM_ARDUINO), the TFLM path on the
    Cortex-M4, measured alike on the same recording (``bench_recording``); the Cortex-M4's engine path
    against ENGINE_LIMITS (``engine_limits``: the unknown decision's instructions on top)."""
    library = library or os.environ.get(TFLM_LIBRARY_ENV)
    source, raw = bench_recording(bundle)
    result: dict[str, Any] = {
        "recording": source,
        "core": core_footprint(bundle.path("tflm_config").parent),
        "measured_with": {"compilers": [version("arm-none-eabi-gcc"), version("riscv64-unknown-elf-gcc")],
                          "emulators": [version("qemu-system-arm"), version("qemu-system-riscv32")],
                          "flags": "-std=c99 -Os -ffunction-sections -fdata-sections; QEMU -icount shift=0",
                          "code": "harlite/board/firmware.py, harlite/board/qemu/run_pipeline.c"},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        runs = measure_cores(bundle, raw, Path(tmp))
        reference = [_but_invoke_ms(line) for line in runs[LIMITS_CORE]["pred_lines"]]
        result["cores"] = {}
        for name, figures in runs.items():
            core = CORES[name]
            lines = [_but_invoke_ms(line) for line in figures.pop("pred_lines")]
            result["cores"][name] = {"title": core.title, "machine": " ".join(core.qemu), "cpu": " ".join(core.cpu),
                                     "clock": core.clock, **figures,
                                     f"pred_lines_as_{LIMITS_CORE}": sum(a == b for a, b in zip(lines, reference))}  # fmt: skip
        limited = result["cores"][LIMITS_CORE]
        limits = engine_limits(bundle.manifest)
        result["limits"] = {"core": LIMITS_CORE, **limits, "without_unknown_decision": ENGINE_LIMITS,
                            "pass": all(limited[k] <= limit for k, limit in limits.items())}  # fmt: skip
        if library is None:
            result["tflm"] = {"measured": False, "why": f"no TFLM sources: set {TFLM_LIBRARY_ENV} to a checkout of "
                              "github.com/tensorflow/tflite-micro-arduino-examples (harlite does not ship them)"}  # fmt: skip
            return result
        tflm = measure(tflm_build(bundle, library, Path(tmp) / "tflm" / "lib"), raw, Path(tmp) / "tflm")
    lines = [_but_invoke_ms(line) for line in tflm.pop("pred_lines")]
    result["tflm"] = {"measured": True, "core": LIMITS_CORE, "library": library_name(Path(library)), **tflm,
                      f"pred_lines_as_{LIMITS_CORE}": sum(a == b for a, b in zip(lines, reference))}  # fmt: skip
    return result


def library_name(library: Path) -> str:
    """``name version`` from an Arduino library's library.properties (not the local path it was read from)."""
    fields = dict(
        line.split("=", 1) for line in (library / "library.properties").read_text().splitlines() if "=" in line
    )
    return f"{fields.get('name', library.name)} {fields.get('version', '?')}"


def _but_invoke_ms(line: str) -> str:
    """A pred line without its invoke_ms (the one field two runtimes or cores may differ in for the same scores)."""
    return line.rsplit(",invoke_ms=", 1)[0]

"""The firmware section of ``harlite bench``: the firmware's portable part measured alike with harlite's C
engine and, given the Arduino library's sources, with TFLite Micro, on the bundle's first test recording."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harlite.board.firmware import ENGINE_LIMITS, TFLM_LIBRARY_ENV, core_footprint, engine_build, measure, tflm_build
from harlite.board.toolchain import CORTEX_M4
from harlite.bundle.loader import Bundle
from harlite.run.simulate import bundle_subjects, load_recordings


def bench_recording(bundle: Bundle, seconds: float = 360.0) -> tuple[str, np.ndarray]:
    """The samples the firmware bench replays: the first ``seconds`` of the bundle's first test recording
    (HAPT test subject 2's first for the released bundle), with the bundle's raw sensors; and its name."""
    dataset, subjects = bundle_subjects(bundle, "test")
    rec = load_recordings(dataset=dataset, subjects=subjects[:1], manifest=bundle.manifest)[0]
    spec = bundle.frontend()
    rec = rec.with_raw_channels(spec.raw_channels)
    n = min(len(rec), round(seconds * spec.rate_hz))
    return f"{rec.source}, first {n} samples", rec.samples[:n]


def bench(bundle: Bundle, library: str | Path | None = None) -> dict[str, Any]:
    """The firmware section of ``harlite bench``: the engine path and, given the Arduino library's sources
    (``library``, default the folder in $HARLITE_TFLM_ARDUINO), the TFLM path, measured alike on the same
    recording (``bench_recording``); the engine path against ENGINE_LIMITS."""
    library = library or os.environ.get(TFLM_LIBRARY_ENV)
    source, raw = bench_recording(bundle)
    config_dir = bundle.path("tflm_config").parent
    result: dict[str, Any] = {"recording": source, "core": core_footprint(config_dir),
                              "measured_with": f"arm-none-eabi-gcc -Os {' '.join(CORTEX_M4)}, QEMU mps2-an386 "
                              "-icount shift=0 (SysTick calibrated), harlite/board/firmware.py"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        engine = measure(engine_build(bundle), raw, Path(tmp) / "engine")
        result["engine"] = {k: v for k, v in engine.items() if k != "pred_lines"}
        result["engine"]["limits"] = ENGINE_LIMITS
        result["engine"]["pass"] = all(engine[k] <= limit for k, limit in ENGINE_LIMITS.items())
        if library is None:
            result["tflm"] = {"measured": False, "why": f"no TFLM sources: set {TFLM_LIBRARY_ENV} to a checkout of "
                              "github.com/tensorflow/tflite-micro-arduino-examples (harlite does not ship them)"}  # fmt: skip
            return result
        tflm = measure(tflm_build(bundle, library, Path(tmp) / "tflm" / "lib"), raw, Path(tmp) / "tflm")
    same = sum(_but_invoke_ms(a) == _but_invoke_ms(b) for a, b in zip(engine["pred_lines"], tflm["pred_lines"]))
    result["tflm"] = {"measured": True, "library": library_name(Path(library)),
                      **{k: v for k, v in tflm.items() if k != "pred_lines"},
                      "pred_lines_as_engine": same}  # fmt: skip
    return result


def library_name(library: Path) -> str:
    """``name version`` from an Arduino library's library.properties (not the local path it was read from)."""
    fields = dict(line.split("=", 1) for line in (library / "library.properties").read_text().splitlines() if "=" in line)
    return f"{fields.get('name', library.name)} {fields.get('version', '?')}"


def _but_invoke_ms(line: str) -> str:
    """A pred line without its invoke_ms (the one field two runtimes may differ in for the same scores)."""
    return line.rsplit(",invoke_ms=", 1)[0]

"""The stage that writes a bundle's C sources: check the int8 model against its TFLM target, measure
TFLM's arena, render every source (``harlite.codegen``), write them into ``tflm/`` and ``engine/`` and
record them in the manifest; and, given a firmware folder, the harlite_har sketch made of them
(``write_sketch``).

The arena size is measured, not guessed: the smallest arena with which TFLite Micro's interpreter
allocates and invokes the model, found by bisection, each probe in a subprocess (a too-small arena
can make TFLM fail a check in its LSTM kernel and crash the process), plus a stated margin."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from harlite.board.arduino import SKETCH, sketch_files
from harlite.board.sources import library_copies
from harlite.bundle.loader import Bundle, load_bundle
from harlite.bundle.manifest import MANIFEST, artifact_entry
from harlite.codegen.c_text import c_comment
from harlite.codegen.sources import (
    ARTIFACTS,
    ENGINE_ARTIFACTS,
    ENGINE_DIR,
    TFLM_DIR,
    artifact_folder,
    generated_sources,
)
from harlite.codegen.targets import model_ops, require_compatible
from harlite.codegen.tflm import op_resolver_header
from harlite.engine import generate
from harlite.errors import BundleError
from harlite.io.files import MARKER, atomic_write_text, check_replaceable, write_json
from harlite.io.locks import folder_lock
from harlite.run.runtimes import Int8Runtime

ARENA_STEP = 16  # TFLM aligns its allocations to 16 bytes
# The margin over the measured minimum: a quarter of it, at least 1 KiB. The probes run TFLM's reference
# kernels on a 64-bit host; a board runs optimized kernels (CMSIS-NN's LSTM keeps 8 int32 kernel-sum
# vectors per LSTM, 32 bytes per unit, and its convolutions an im2col scratch) with 32-bit structs.
ARENA_MARGIN_FRACTION, ARENA_MARGIN_MIN = 0.25, 1024
# Run in a subprocess: allocate and invoke a model in TFLM with a given arena; exit 0 on success.
_PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
interpreter = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
details = interpreter.get_input_details(0)
for _ in range(2):
    interpreter.reset()
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
    interpreter.invoke()
"""


def probe_arena(model_path: str | Path, arena_bytes: int) -> subprocess.CompletedProcess:
    """Allocate and invoke the model in TFLM with ``arena_bytes`` in a subprocess (returncode 0 = fits)."""
    return subprocess.run([sys.executable, "-c", _PROBE, str(model_path), str(int(arena_bytes))],
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip


def measure_arena(model_path: str | Path, step: int = ARENA_STEP) -> dict[str, int]:
    """The smallest TFLM arena (a multiple of ``step``) that allocates and invokes the model, and
    ``arena_bytes`` = that plus the margin (see ARENA_MARGIN_FRACTION). The first probe, with a generous
    arena, is the check that the model runs in TFLM at all (an op TFLM lacks is a clear error)."""
    size = Path(model_path).stat().st_size
    hi = _round_up(max(10 * size, 64 * 1024), step)
    first = probe_arena(model_path, hi)
    if first.returncode != 0:
        raise BundleError(f"TFLite Micro cannot run {Path(model_path).name} (with a {hi}-byte arena): "
                                   f"{_last_error(first)}. Change the model to use ops TFLM supports.")  # fmt: skip
    lo = 0  # invariant: an arena of lo bytes fails, hi bytes works
    while hi - lo > step:
        mid = lo + (hi - lo) // (2 * step) * step
        if probe_arena(model_path, mid).returncode == 0:
            hi = mid
        else:
            lo = mid
    margin = _round_up(max(ARENA_MARGIN_MIN, ARENA_MARGIN_FRACTION * hi), step)
    return {"arena_bytes": hi + margin, "arena_min_bytes": hi, "arena_margin_bytes": margin, "arena_step_bytes": step}


def write_sources(
    bundle_dir: str | Path, firmware_dir: str | Path | None = None, force: bool = False
) -> dict[str, Any]:
    """Check the int8 model against the bundle's TFLM target and in TFLM itself, measure its arena, write
    ``bundle_dir/tflm/*`` and ``bundle_dir/engine/*`` (and the same files into ``firmware_dir``), and
    record target, ops, arena, engine figures and artifacts in the manifest, then write the sketch into
    ``firmware_dir`` (``write_sketch``); returns the manifest.

    The bundle is loaded with ``harlite.bundle.loader.load_bundle`` (its int8 model verified; the C sources are
    what this writes anew) under a lock on ``bundle_dir``.
    """
    bundle_dir = Path(bundle_dir)
    with folder_lock(bundle_dir):
        bundle = load_bundle(bundle_dir, verify=False)
        manifest = dict(bundle.manifest)
        model = bundle.read("int8")
        model_path = bundle.path("int8")
        target = bundle.target
        require_compatible(model, target, str(model_path))
        ops = model_ops(model)
        comment = source_comment(bundle_dir, manifest)
        op_resolver_header(ops, comment)  # fails early for an op without a resolver method
        engine = generate(model, comment)  # fails early for a construct the C engine does not run
        firmware = Path(firmware_dir) if firmware_dir is not None else None
        if firmware is not None:
            check_sketch(firmware, force)
        print(f"harlite codegen: measuring the TFLite Micro arena of {model_path.name} ({len(model)} bytes)...",
              file=sys.stderr)  # fmt: skip
        tflm = measure_arena(model_path)
        tflm.update({"flash_bytes": len(model), "measured_with": _measured_with(), "target": target})
        manifest.update(tflm=tflm, ops=ops, engine=engine.figures())
        Int8Runtime(manifest, "tflm", model, str(model_path))  # quantization and shape must match the manifest
        texts, _ = generated_sources(manifest, model, comment, engine)
        names = {**ARTIFACTS, **ENGINE_ARTIFACTS}
        for kind, text in texts.items():
            atomic_write_text(bundle_dir / artifact_folder(kind) / names[kind], text)
        manifest["artifacts"] = {**manifest["artifacts"],
                                 **{kind: artifact_entry(bundle_dir / artifact_folder(kind) / names[kind], bundle_dir)
                                    for kind in texts}}  # fmt: skip
        write_json(bundle_dir / MANIFEST, manifest)
        bundle = load_bundle(bundle_dir)  # what was written reads back verified
        if firmware is not None:
            write_sketch(bundle, firmware, force)
    print(f"harlite codegen: {target}; arena {tflm['arena_bytes']} bytes (measured minimum {tflm['arena_min_bytes']} "
          f"+ margin {tflm['arena_margin_bytes']}), {len(ops)} ops; C engine scratch {engine.scratch_bytes} bytes "
          f"-> {bundle_dir / TFLM_DIR}, {bundle_dir / ENGINE_DIR}" + (f" and {firmware}" if firmware is not None else ""),
          file=sys.stderr)  # fmt: skip
    return manifest


def check_sketch(folder: Path, force: bool) -> None:
    """The sketch's files in ``folder`` may be replaced: harlite generated them, or ``force`` (the .ino is
    the user's to edit: ``write_sketch`` keeps an edited one)."""
    for name in [*library_copies(api=False), *ARTIFACTS.values(), *ENGINE_ARTIFACTS.values()]:
        check_replaceable(folder / name, force)


def write_sketch(bundle: Bundle, folder: str | Path, force: bool = False) -> list[Path]:
    """The harlite_har sketch of ``bundle`` (``harlite.board.arduino.sketch_files``) written into ``folder``:
    every file harlite generates; the .ino when the folder has none, when it is harlite's unchanged, or with
    ``force``. Files harlite did not generate are replaced only with ``force``. Returns the files written."""
    folder = Path(folder)
    check_sketch(folder, force)
    written = []
    with folder_lock(folder):
        for name, text in sketch_files(bundle).items():
            path = folder / name
            if name == SKETCH and path.exists() and not force and path.read_text(errors="replace") != text:
                print(
                    f"harlite: kept {path}, which differs from harlite's sketch (--force replaces it)", file=sys.stderr
                )
                continue
            written.append(atomic_write_text(path, text))
    return written


def _measured_with() -> str:
    import platform
    from importlib.metadata import version

    return f"tflite-micro {version('tflite-micro')} Python interpreter, reference kernels, {platform.machine()} host"


def _last_error(result: subprocess.CompletedProcess) -> str:
    """TFLM's own messages and the exception, without the Python traceback."""
    lines = [line.strip() for line in (result.stderr or "").splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Traceback", "File ", "^", "~"))][-3:]
    message = "; ".join(lines) or f"exit status {result.returncode}"
    return f"the interpreter crashed (signal {-result.returncode}): {message}" if result.returncode < 0 else message


def _round_up(n: int, step: int) -> int:
    return int(math.ceil(n / step) * step)


def source_comment(bundle_dir: Path, manifest: dict[str, Any]) -> str:
    entry = manifest["artifacts"]["int8"]
    return c_comment(f"{MARKER} from {bundle_dir.resolve().name}/{MANIFEST}; {entry['file']} sha256 "
                      f"{entry['sha256']}. Do not edit.")  # fmt: skip

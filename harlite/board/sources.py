"""The C a board runs, shipped inside the package (one copy of every file; sketches, bundles and exports
are generated from it):

- ``c/``: the portable C99 core: front end and smoothing (``harlite_core``), serial lines
  (``harlite_serial``) and the per-sample pipeline (``harlite_pipeline``);
- ``qemu/``: the drivers that run that pipeline under QEMU (start-up code, linker scripts,
  ``run_pipeline.c``);
- ``tflm/``: the glue that runs a model in TFLite Micro instead of harlite's C engine.
"""

from __future__ import annotations

from pathlib import Path

BOARD_DIR = Path(__file__).resolve().parent
C_DIR = BOARD_DIR / "c"
CORE_SOURCES = (C_DIR / "harlite_core.c", C_DIR / "harlite_serial.c", C_DIR / "harlite_pipeline.c")
CORE_HEADERS = (C_DIR / "harlite_core.h", C_DIR / "harlite_serial.h", C_DIR / "harlite_pipeline.h")
QEMU_DIR = BOARD_DIR / "qemu"
STARTUP = QEMU_DIR / "cortex_m4"
RUN_C = QEMU_DIR / "run_pipeline.c"
TFLM_GLUE = BOARD_DIR / "tflm"

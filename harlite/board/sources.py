"""The C a board runs, shipped inside the package (one copy of every file; sketches, bundles and exports
are generated from it):

- ``c/``: the portable C99 library: the API (``harlite.h``), front end and smoothing (``harlite_core``),
  serial lines (``harlite_serial``) and the per-sample pipeline (``harlite_pipeline``);
- ``qemu/``: what runs it under QEMU: ``run_pipeline.c`` (the per-sample path on a recording), the Arm
  start-up code and a linker script per emulated machine (``arm/``), RISC-V's (``riscv/``);
- ``tflm/``: the glue that runs a model in TFLite Micro instead of harlite's C engine;
- ``templates/``: the Arduino sketch, the export's example sketch, CMake files and READMEs.
"""

from __future__ import annotations

import re
from pathlib import Path

from harlite.io.files import MARKER

BOARD_DIR = Path(__file__).resolve().parent
C_DIR = BOARD_DIR / "c"
# The firmware's portable part, without the API (what the sketch compiles), then the API.
CORE_NAMES = ("harlite_core", "harlite_serial", "harlite_pipeline")
API_NAME = "harlite"
CORE_SOURCES = tuple(C_DIR / f"{name}.c" for name in CORE_NAMES)
CORE_HEADERS = tuple(C_DIR / f"{name}.h" for name in CORE_NAMES)
QEMU_DIR = BOARD_DIR / "qemu"
RUN_C = QEMU_DIR / "run_pipeline.c"
ARM_STARTUP = QEMU_DIR / "arm" / "startup.c"
TFLM_GLUE = BOARD_DIR / "tflm"
TEMPLATES = BOARD_DIR / "templates"


def package_copy(path: Path) -> str:
    """A file of the package as it is copied into a sketch or an export: harlite's marker first (so that
    harlite may refresh it), then the file."""
    origin = path.relative_to(BOARD_DIR.parent).as_posix()
    return f"/* {MARKER}: a copy of harlite/{origin} (do not edit; regenerate). */\n" + path.read_text()


def library_copies(api: bool = True) -> dict[str, str]:
    """The portable C of the package by file name, as copied: the core, serial lines and pipeline, and with
    ``api`` harlite.h and harlite.c."""
    names = (*CORE_NAMES, API_NAME) if api else CORE_NAMES
    return {f"{name}{ext}": package_copy(C_DIR / f"{name}{ext}") for name in names for ext in (".h", ".c")}


def render(template: str, **values: str) -> str:
    """A file of ``templates/`` with every ``@KEY@`` replaced by ``values[KEY]`` (already escaped for the
    file's language by the caller); every placeholder must be given."""
    text = (TEMPLATES / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = re.search(r"@[A-Z_]+@", text)
    if left:
        raise ValueError(f"templates/{template}: no value for {left.group(0)}")
    return text

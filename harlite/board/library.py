"""A bundle's model as a portable C library: the files every export and every measured build are made of.

``library_files(bundle)``: the API (harlite.h), the front end, smoothing, serial lines and pipeline (copies
of the package's ``c/``), the bundle's config header and its C engine (its verified ``tflm/`` and
``engine/`` files), by file name. Pure text: the caller writes them.
"""

from __future__ import annotations

from harlite.board.sources import library_copies
from harlite.bundle.loader import Bundle
from harlite.codegen.sources import ARTIFACTS, ENGINE_ARTIFACTS
from harlite.errors import BundleError

MODEL_KINDS = ("tflm_config", *ENGINE_ARTIFACTS)  # the bundle's part of the library


def model_files(bundle: Bundle, kinds: tuple[str, ...] = MODEL_KINDS) -> dict[str, str]:
    """The bundle's generated C sources of ``kinds`` by file name, as verified by ``harlite.bundle``."""
    missing = [kind for kind in kinds if not bundle.has(kind)]
    if missing:
        raise BundleError(f"{bundle.manifest_file} lists no {missing[0]} source: write the bundle's C sources "
                          f"with 'harlite convert {bundle.root}'.")  # fmt: skip
    names = {**ARTIFACTS, **ENGINE_ARTIFACTS}
    return {names[kind]: bundle.read(kind).decode("utf-8") for kind in kinds}


def library_files(bundle: Bundle) -> dict[str, str]:
    """Every file of the model's C library (see the module docstring), by file name."""
    return {**library_copies(api=True), **model_files(bundle)}


def library_sources(files: dict[str, str]) -> list[str]:
    """The names of a library's C sources, in a stable order."""
    return sorted(name for name in files if name.endswith(".c"))

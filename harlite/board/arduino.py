"""The Arduino side of a bundle, as files by relative path (pure text; the caller writes them):

- ``sketch_files``: the harlite_har sketch for the Nano 33 BLE Sense (firmware/arduino/harlite_har is
  this, for the released bundle): the .ino, the core copied from the package, the bundle's TFLM and C
  engine sources;
- ``arduino_library``: ``harlite export --format arduino``, the model as an Arduino library
  (library.properties, src/, examples/classify/, README.md), usable by the Arduino IDE as a .ZIP library
  and by PlatformIO.
"""

from __future__ import annotations

from harlite import __version__
from harlite.board.library import library_files, model_files
from harlite.board.readme import library_name, model_section
from harlite.board.sources import library_copies, render
from harlite.bundle.loader import Bundle
from harlite.codegen.sources import ARTIFACTS, ENGINE_ARTIFACTS
from harlite.io.files import MARKER

SKETCH = "harlite_har.ino"
EXAMPLE = "classify"


def sketch_files(bundle: Bundle) -> dict[str, str]:
    """The harlite_har sketch folder's files for ``bundle`` (TFLM and the C engine: both build options)."""
    files = {**library_copies(api=False), **model_files(bundle, (*ARTIFACTS, *ENGINE_ARTIFACTS))}
    files[SKETCH] = render(SKETCH)
    return dict(sorted(files.items()))


def arduino_library(bundle: Bundle) -> dict[str, str]:
    """The Arduino library of the bundle's model."""
    name = library_name(bundle)
    files = {f"src/{file}": text for file, text in library_files(bundle).items()}
    files[f"examples/{EXAMPLE}/{EXAMPLE}.ino"] = render(f"{EXAMPLE}.ino")
    files["library.properties"] = render("library.properties", NAME=name, VERSION=__version__)
    files["README.md"] = render("README_arduino.md", NAME=name, MARKER=MARKER, HOP_S=_hop_seconds(bundle),
                                MODEL_SECTION=model_section(bundle, "arduino"))  # fmt: skip
    return files


def _hop_seconds(bundle: Bundle) -> str:
    return f"{bundle.manifest['hop'] / float(bundle.manifest['rate_hz']):g}"

"""``harlite export --format cmake``: the model's C library with a CMake target, for plain CMake, ESP-IDF (a
component) and Zephyr (a module), a toolchain file for arm-none-eabi-gcc and a host example, as files by
relative path (pure text; the caller writes them)."""

from __future__ import annotations

from harlite.board.library import library_files, library_sources
from harlite.board.readme import library_name, model_section
from harlite.board.sources import TEMPLATES, package_copy, render
from harlite.bundle.loader import Bundle
from harlite.io.files import MARKER


def cmake_library(bundle: Bundle) -> dict[str, str]:
    """The CMake library of the bundle's model."""
    library = library_files(bundle)
    sources = [f"src/{name}" for name in library_sources(library)]
    name = library_name(bundle)
    hop_s = f"{bundle.manifest['hop'] / float(bundle.manifest['rate_hz']):g}"
    files = {f"src/{file}": text for file, text in library.items()}
    files["CMakeLists.txt"] = render("CMakeLists.txt", MARKER=MARKER, NAME=name,
                                     SOURCES="".join(f"    {s}\n" for s in sources))  # fmt: skip
    files["cmake/arm-none-eabi.cmake"] = render("arm-none-eabi.cmake", MARKER=MARKER)
    files["zephyr/module.yml"] = render("zephyr_module.yml", MARKER=MARKER)
    files["zephyr/CMakeLists.txt"] = render("zephyr_CMakeLists.txt", MARKER=MARKER,
                                            ZEPHYR_SOURCES="".join(f"    ${{HARLITE_DIR}}/{s}\n" for s in sources))  # fmt: skip
    files["zephyr/Kconfig"] = render("zephyr_Kconfig", MARKER=MARKER)
    files["examples/replay.c"] = package_copy(TEMPLATES / "replay.c")
    files["README.md"] = render("README_cmake.md", NAME=name, MARKER=MARKER, HOP_S=hop_s,
                                MODEL_SECTION=model_section(bundle, "cmake"))  # fmt: skip
    return files

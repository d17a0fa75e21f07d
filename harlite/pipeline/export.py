"""The stage behind ``harlite export``: a bundle's model as a library for a build system, in a folder of its
own, written atomically.

Formats are a registry (``FORMATS``): a name, a one-line summary and a function that makes the export's
files (relative path -> text or bytes) from a verified ``Bundle``. ``arduino`` and ``cmake`` come from
``harlite.board``, ``web`` from ``harlite.web``; another format is one more ``register`` line here.

The folder is built beside ``out`` under a temporary name and then renamed into place, so ``out`` is
never half written. It records what harlite wrote (``RECORD``: format, bundle, every file's sha256): an
existing ``out`` is replaced when harlite wrote it and nothing in it changed since; a folder harlite did
not write, or one with a file changed or added, only with ``force``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from harlite import __version__
from harlite.board.arduino import arduino_library
from harlite.board.cmake import cmake_library
from harlite.bundle.loader import Bundle, load_bundle
from harlite.errors import HarliteError
from harlite.io.files import MARKER, write_json
from harlite.io.hashing import sha256_file
from harlite.io.limits import read_bounded
from harlite.web.export import web_files

RECORD = ".harlite-export.json"
RECORD_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str
    files: Callable[[Bundle], Mapping[str, str | bytes]]


FORMATS: dict[str, ExportFormat] = {}


def register(fmt: ExportFormat) -> None:
    """Make ``fmt`` a choice of ``harlite export --format``."""
    FORMATS[fmt.name] = fmt


register(ExportFormat("arduino", "an Arduino library (library.properties, src/, examples/): the Arduino IDE as a "
                      ".ZIP library, PlatformIO", arduino_library))  # fmt: skip
register(ExportFormat("cmake", "a C library with a CMake target: plain CMake, ESP-IDF (component), Zephyr "
                      "(module); a toolchain file for arm-none-eabi-gcc", cmake_library))  # fmt: skip
register(ExportFormat("web", "a static folder that runs the model in a browser (the board's C in WebAssembly)",
                      web_files))  # fmt: skip


def export(bundle: Bundle | str | Path, fmt: str, out: str | Path, force: bool = False) -> dict[str, Any]:
    """Write the export ``fmt`` of ``bundle`` into the folder ``out``; returns what ``RECORD`` holds."""
    if fmt not in FORMATS:
        raise HarliteError(f"no export format {fmt!r}: choose one of {', '.join(sorted(FORMATS))}.")
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    out = Path(out)
    files = FORMATS[fmt].files(bundle)
    for name in files:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or name == RECORD or not path.parts:
            raise HarliteError(f"export format {fmt} made a file outside its folder: {name!r} (a bug to report).")
    _check_replaceable(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name, content in sorted(files.items()):
            path = stage / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        entry = bundle.entry("int8")
        record = {"generator": f"{MARKER} {__version__} (harlite export --format {fmt})", "format": fmt,
                  "bundle": bundle.root.name, "int8_sha256": entry["sha256"],
                  "files": {name: sha256_file(stage / name) for name in sorted(files)}}  # fmt: skip
        write_json(stage / RECORD, record)
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the user's usual mode
        _swap(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return record


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_replaceable(out: Path, force: bool) -> None:
    """``out`` may be (re)written: it does not exist, is empty, or holds exactly what harlite exported there
    (else only with ``force``); never the current folder, one of its parents, or the home folder."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise HarliteError(
            f"{out} is {'a symbolic link' if out.is_symlink() else 'a file'}: choose a folder for --out."
        )
    resolved, cwd = out.resolve(), Path.cwd().resolve()
    if resolved in (cwd, *cwd.parents, Path.home().resolve()):
        raise HarliteError(f"{out} is the current folder, one of its parents or the home folder: choose a folder of "
                           "its own for --out (the export replaces the whole folder).")  # fmt: skip
    if not out.exists() or force or not any(out.iterdir()):
        return
    changed = _changed_since_export(out)
    if changed:
        raise HarliteError(
            f"{out} exists and {changed}: pass --force to replace the whole folder, or choose another --out."
        )


def _changed_since_export(out: Path) -> str | None:
    """Why ``out`` is not harlite's export as it was written (None when it is)."""
    record_path = out / RECORD
    if not record_path.is_file():
        return "harlite did not write it"
    try:
        record = json.loads(read_bounded(record_path, RECORD_MAX_BYTES, error=HarliteError))
        written = dict(record["files"])
        if MARKER not in str(record.get("generator", "")):
            return "harlite did not write it"
    except (ValueError, KeyError, TypeError):
        return f"its {RECORD} is not harlite's"
    for path in sorted(out.rglob("*")):
        name = path.relative_to(out).as_posix()
        if path.is_dir() and not path.is_symlink() or name == RECORD:
            continue
        if name not in written:
            return f"{name} in it is not harlite's"
        if path.is_symlink() or not path.is_file() or sha256_file(path) != written[name]:
            return f"{name} in it was changed since harlite exported it"
    return None


def _swap(stage: Path, out: Path) -> None:
    """Rename ``stage`` to ``out``, the old ``out`` (if any) out of the way first, then deleted."""
    if not out.exists():
        os.rename(stage, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(stage, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)

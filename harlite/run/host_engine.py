"""The generated engine on the host: compiled with the system C compiler into a shared library, called
through ctypes.

The library is cached in a private folder of harlite's cache (``harlite.io.cache.private_folder``: owned
by this user, writable by no one else; else a temporary folder of this process), named by its sources,
the compiler and its flags, with the sha256 of the library beside it. Before it is loaded, the file is
opened (no symlink followed), checked to be this user's and writable by no one else, and hashed through
that open file against the recorded sha256; a library that fails is compiled again."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from harlite.engine.generate import Engine, generate
from harlite.errors import BundleError, HarliteError, ToolMissing
from harlite.io.cache import owned_and_private, private_folder

HOST_FLAGS = ("-std=c99", "-O2", "-shared", "-fPIC")


def compiler() -> str:
    """The system C compiler: $CC or gcc."""
    name = os.environ.get("CC", "gcc")
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found: install a C compiler (apt-get install gcc) or set CC.")
    return path


def build_library(files: dict[str, str], flags: tuple[str, ...] = (), cache: Path | None = None) -> Path:
    """Compile the engine's sources into a shared library; returns its (cached) path, its sha256 in
    ``<path>.sha256``."""
    cc = compiler()
    key = hashlib.sha256(repr((sorted(files.items()), cc, HOST_FLAGS, flags)).encode()).hexdigest()[:24]
    folder = private_folder("engine", cache)
    lib = folder / f"harlite_engine_{key}.so"
    if _recorded_digest(lib) is not None:
        return lib
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        sources = [Path(tmp) / name for name in files if name.endswith(".c")]
        out = Path(tmp) / lib.name
        done = subprocess.run([cc, *HOST_FLAGS, *flags, *map(str, sources), "-o", str(out)], capture_output=True,
                              text=True, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
        if done.returncode:
            raise HarliteError(f"{cc} could not compile the C engine: {done.stderr.strip().splitlines()[-1:]}")
        os.chmod(out, 0o700)
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        sidecar = Path(tmp) / f"{lib.name}.sha256"
        sidecar.write_text(digest + "\n")
        os.chmod(sidecar, 0o600)
        os.replace(out, lib)
        os.replace(sidecar, _sidecar(lib))
    return lib


def _sidecar(lib: Path) -> Path:
    return lib.with_name(f"{lib.name}.sha256")


def _recorded_digest(lib: Path) -> str | None:
    """The sha256 recorded beside ``lib``, if both are this user's private files."""
    try:
        fd = os.open(_sidecar(lib), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not owned_and_private(os.fstat(f.fileno())):
            return None
        text = f.read(65).decode("ascii", "replace").strip()
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


def load_library(lib: Path) -> ctypes.CDLL:
    """``dlopen`` of ``lib`` after checking it: this user's, writable by no one else, its sha256 the one
    recorded beside it (hashed through the opened file). ``lib`` lies in a private folder
    (``private_folder``), so nobody but this user can change it between the check and the load; each
    library has a name of its own (its sources' key), so ``dlopen`` never mistakes one for another. A
    ``HarliteError`` otherwise."""
    expected = _recorded_digest(lib)
    try:
        fd = os.open(lib, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise HarliteError(f"{lib} cannot be opened ({e.strerror}).") from None
    try:
        if expected is None or not owned_and_private(os.fstat(fd)):
            raise HarliteError(f"{lib} is not a library harlite compiled for this user (owner, permissions or "
                               "record): it is not loaded.")  # fmt: skip
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
    finally:
        os.close(fd)
    if digest.hexdigest() != expected:
        raise HarliteError(f"{lib} changed since harlite compiled it (sha256 differs): it is not loaded.")
    return ctypes.CDLL(str(lib))


def verified_library(
    files: dict[str, str], flags: tuple[str, ...] = (), cache: Path | None = None
) -> tuple[Path, ctypes.CDLL]:
    """The engine library for ``files``, compiled or cached, checked and loaded; a cached copy that fails
    the checks is compiled again (in a private temporary folder when the cache's copy is not ours)."""
    lib = build_library(files, flags, cache)
    try:
        return lib, load_library(lib)
    except HarliteError:
        for stale in (lib, _sidecar(lib)):
            try:
                stale.unlink()
            except OSError:
                pass
        lib = build_library(files, flags, cache)
        return lib, load_library(lib)


class HostEngine:
    """The C engine of an int8 .tflite model, on the host.

    Offers what harlite.run.runtimes expects of an interpreter (``input_shape``, ``input_dtype``,
    ``input_quant``, ``output_quant``, ``run(x)``) and ``invoke_int8(q)`` as Int8Runtime does."""

    def __init__(self, model: bytes | Engine, flags: tuple[str, ...] = (), cache: Path | None = None) -> None:
        self.engine = model if isinstance(model, Engine) else generate(model)
        self.library, self._lib = verified_library(self.engine.files, flags, cache)
        self._invoke = self._lib.harlite_engine_invoke
        self._invoke.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._invoke.restype = ctypes.c_int
        self.window, self.channels, self.classes = self.engine.window, self.engine.channels, self.engine.classes
        self.input_shape = (1, self.window, self.channels)
        self.input_dtype = np.dtype(np.int8)
        self.input_quant, self.output_quant = self.engine.input_quant, self.engine.output_quant

    def invoke_int8(self, q: np.ndarray) -> np.ndarray:
        """(classes,) int8 output of one quantized (window, channels) int8 window."""
        q = np.asarray(q)
        if q.dtype != np.int8 or q.shape != (self.window, self.channels):
            raise BundleError(f"invoke_int8 takes a ({self.window}, {self.channels}) int8 window, "
                              f"got {q.shape} {q.dtype}.")  # fmt: skip
        x = np.ascontiguousarray(q)
        out = np.zeros(self.classes, np.int8)
        self._invoke(x.ctypes.data, out.ctypes.data)
        return out

    def run(self, x: np.ndarray) -> np.ndarray:
        """The interpreter interface of harlite.run.runtimes: one (window, channels) int8 window."""
        return self.invoke_int8(x)

"""The generated engine on the host: compiled with the system C compiler into a shared library, called
through ctypes. The library is cached under harlite's cache folder, keyed by the sources, the compiler
and its flags, so a model is compiled once."""

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
from harlite.io.cache import cache_dir

HOST_FLAGS = ("-std=c99", "-O2", "-shared", "-fPIC")


def compiler() -> str:
    """The system C compiler: $CC or gcc."""
    name = os.environ.get("CC", "gcc")
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found: install a C compiler (apt-get install gcc) or set CC.")
    return path


def build_library(files: dict[str, str], flags: tuple[str, ...] = (), cache: Path | None = None) -> Path:
    """Compile the engine's sources into a shared library; returns its (cached) path."""
    cc = compiler()
    key = hashlib.sha256(repr((sorted(files.items()), cc, HOST_FLAGS, flags)).encode()).hexdigest()[:24]
    folder = (cache or cache_dir()) / "engine"
    lib = folder / f"harlite_engine_{key}.so"
    if lib.exists():
        return lib
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        sources = [Path(tmp) / name for name in files if name.endswith(".c")]
        out = Path(tmp) / lib.name
        done = subprocess.run([cc, *HOST_FLAGS, *flags, *map(str, sources), "-o", str(out)], capture_output=True,
                              text=True, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
        if done.returncode:
            raise HarliteError(f"{cc} could not compile the C engine: {done.stderr.strip().splitlines()[-1:]}")
        os.replace(out, lib)
    return lib


class HostEngine:
    """The C engine of an int8 .tflite model, on the host.

    Offers what harlite.run.runtimes expects of an interpreter (``input_shape``, ``input_dtype``,
    ``input_quant``, ``output_quant``, ``run(x)``) and ``invoke_int8(q)`` as Int8Runtime does."""

    def __init__(self, model: bytes | Engine, flags: tuple[str, ...] = (), cache: Path | None = None) -> None:
        self.engine = model if isinstance(model, Engine) else generate(model)
        self.library = build_library(self.engine.files, flags, cache)
        self._lib = ctypes.CDLL(str(self.library))
        self.feature_sizes = [size for size, _, _ in self.engine.features]
        if self.feature_sizes:
            self._invoke = self._lib.harlite_engine_invoke_features
            self._invoke.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        else:  # a model of one output: the engine has the one entry point
            self._invoke = self._lib.harlite_engine_invoke
            self._invoke.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._invoke.restype = ctypes.c_int
        self.window, self.channels, self.classes = self.engine.window, self.engine.channels, self.engine.classes
        self.input_shape = (1, self.window, self.channels)
        self.input_dtype = np.dtype(np.int8)
        self.input_quant, self.output_quant = self.engine.input_quant, self.engine.output_quant

    def invoke_int8(self, q: np.ndarray) -> np.ndarray:
        """(classes,) int8 output of one quantized (window, channels) int8 window."""
        return self.outputs_int8(q)[0]

    def outputs_int8(self, q: np.ndarray) -> list[np.ndarray]:
        """Every int8 output of the model for one quantized (window, channels) int8 window, in the model's
        order: the class scores, then the other outputs (``HARLITE_ENGINE_FEATURES``)."""
        q = np.asarray(q)
        if q.dtype != np.int8 or q.shape != (self.window, self.channels):
            raise BundleError(f"invoke_int8 takes a ({self.window}, {self.channels}) int8 window, "
                              f"got {q.shape} {q.dtype}.")  # fmt: skip
        x = np.ascontiguousarray(q)
        out = np.zeros(self.classes, np.int8)
        features = np.zeros(max(1, sum(self.feature_sizes)), np.int8)
        if self.feature_sizes:
            self._invoke(x.ctypes.data, out.ctypes.data, features.ctypes.data)
        else:
            self._invoke(x.ctypes.data, out.ctypes.data)
        return [out, *np.split(features[: sum(self.feature_sizes)], np.cumsum(self.feature_sizes)[:-1])]

    def run(self, x: np.ndarray) -> np.ndarray:
        """The interpreter interface of harlite.run.runtimes: one (window, channels) int8 window."""
        return self.invoke_int8(x)

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output of one (window, channels) int8 window (see ``outputs_int8``)."""
        return self.outputs_int8(x)




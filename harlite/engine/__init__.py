"""harlite's dependency-free C99 inference engine for the bundles' int8 models.

- ``generate(model_bytes)`` -> ``Engine``: the C sources (``files``: the generated header and model file
  plus the static kernels) and figures (scratch and weight bytes, MACs).
- ``HostEngine(model_bytes)``: the generated engine compiled with the system C compiler into a shared
  library (cached by the sources' hash) and called through ctypes: ``invoke_int8(q)`` like
  ``harlite.runtimes.Int8Runtime``.
- ``harlite.engine.measure``: the Cortex-M4 build run under QEMU (instructions per window, flash, RAM).

The engine is bit-exact with TFLite Micro's reference kernels (the ``tflite-micro`` wheel); see
docs/engine.md.
"""

from harlite.engine.generate import KERNELS_DIR, Engine, generate, kernel_sources
from harlite.engine.host import HostEngine

__all__ = ["KERNELS_DIR", "Engine", "HostEngine", "generate", "kernel_sources"]

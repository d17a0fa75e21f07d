"""harlite's dependency-free C99 inference engine for the bundles' int8 models.

``generate(model_bytes)`` -> ``Engine``: the C sources (``files``: the generated header and model file
plus the static kernels of ``engine/c/``) and figures (scratch and weight bytes, MACs). The engine is
bit-exact with TFLite Micro's reference kernels (the ``tflite-micro`` wheel); see docs/engine.md.
``harlite.run.host_engine`` compiles it for the host, ``harlite.board.engine_bench`` for a Cortex-M4.
"""

from harlite.engine.generate import KERNELS_DIR, Engine, generate, kernel_sources

__all__ = ["KERNELS_DIR", "Engine", "generate", "kernel_sources"]

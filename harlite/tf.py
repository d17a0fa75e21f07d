"""The one place TensorFlow is imported (legacy Keras, tf-keras, so that tfmot works), with its native
log kept off the user's terminal unless ``HARLITE_VERBOSE=1`` (the CLI's ``--verbose``).

Where TensorFlow's stderr noise comes from (TF 2.21, measured) and what silences it:

- absl's C++ log before TensorFlow initialises it (``WARNING: All log messages before
  absl::InitializeLog()``, oneDNN's note, ``Could not find cuda drivers``, ``cpu_feature_guard``):
  printed at import, once per TensorFlow shared library (twice), whatever ``TF_CPP_MIN_LOG_LEVEL``,
  ``GLOG_minloglevel`` or ``CUDA_VISIBLE_DEVICES`` say. Only redirecting file descriptor 2 during the
  import hides it (``quiet``).
- TensorFlow's own C++ log after that (the ``cuInit`` "CUDA error" line at device start, the TFLite
  converter's SavedModel and MLIR lines, tf.data's 600-character ``NodeDef mentions attribute`` lines):
  ``TF_CPP_MIN_LOG_LEVEL=3``, which must be set before TensorFlow is first imported (a module that
  imports tensorflow or tfmot directly, before this one, lets level 0 through).
- Lines printed with plain ``fprintf``: the calibrator's ``fully_quantize: 0, inference_type: 6, ...``
  (``convert``) and LiteRT's ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` at
  ``allocate_tensors`` (``litert_interpreter``): only the descriptor redirection hides them.
- Python-side loggers (``tf.get_logger()``, ``absl.logging``): set to ERROR.

``quiet()`` runs a block with descriptor 2 sent to a temporary file and afterwards writes back every
line that is not such noise (a Python warning, harlite's own progress), so nothing else is lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

# A line of TensorFlow's, absl's, MLIR's or the TFLite runtime's native log (matched at a line start).
NOISE = re.compile(
    rb"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.+-]+:\d+\] "  # absl / TensorFlow C++ log line
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: "  # second line of cpu_feature_guard's note
    rb"|fully_quantize: \d"  # the TFLite calibrator
    rb"|INFO: (?:Created|Initialized|Replacing|Applying) "  # the TFLite/LiteRT runtime and its delegates
    rb"|loc\(|<unknown>:\d+: "  # MLIR diagnostics (a failed conversion raises them as the exception too)
)
_depth = 0  # quiet() blocks currently open (nested blocks share the outermost redirection)


def verbose() -> bool:
    """Whether ``--verbose`` (or HARLITE_VERBOSE=1) asked for TensorFlow's log and tracebacks."""
    return os.environ.get("HARLITE_VERBOSE", "") not in ("", "0")


def quiet_environment() -> None:
    """Set what TensorFlow reads at import: tf-keras as ``tf.keras``, and (unless verbose) log level 3.

    Safe to call any number of times; has effect only before TensorFlow is first imported.
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    if not verbose():
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Run the block with the process's stderr descriptor captured; afterwards write back every captured
    line that is not native TensorFlow log (``NOISE``). A no-op when verbose, nested, or without fd 2."""
    global _depth
    if verbose() or _depth:
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    capture = tempfile.TemporaryFile()
    os.dup2(capture.fileno(), 2)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        kept = b"".join(line for line in capture if not NOISE.match(line))
        capture.close()
        while kept:
            kept = kept[os.write(2, kept) :]


def tensorflow() -> ModuleType:
    """Import TensorFlow with tf-keras as ``tf.keras`` (tfmot 0.8 does not support Keras 3), quietly."""
    quiet_environment()
    with quiet():
        import tensorflow as tf
        import tf_keras  # noqa: F401  (import-time log of its own, in the same quiet block)
    if not verbose():
        import logging

        from absl import logging as absl_logging

        tf.get_logger().setLevel(logging.ERROR)
        absl_logging.set_verbosity(absl_logging.ERROR)
    return tf


def keras() -> ModuleType:
    """The tf-keras module (Keras 2), which tfmot and the TFLite converter here expect."""
    tensorflow()
    import tf_keras

    return tf_keras


def tfmot() -> ModuleType:
    """tensorflow_model_optimization, imported after TensorFlow's environment is set (importing it
    first would import TensorFlow with its full log)."""
    tensorflow()
    with quiet():
        import tensorflow_model_optimization

    return tensorflow_model_optimization


def convert(converter: Any) -> bytes:
    """``converter.convert()`` of a ``tf.lite.TFLiteConverter``, without its native log."""
    with quiet():
        return converter.convert()


def litert_interpreter(model: bytes, **options: Any) -> Any:
    """A LiteRT ``Interpreter`` on ``model`` with its tensors allocated (``options`` go to the
    constructor, e.g. ``num_threads=1``), without the runtime's delegate notes."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet():
        interpreter = Interpreter(model_content=model, **options)
        interpreter.allocate_tensors()
    return interpreter

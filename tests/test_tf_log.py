"""TensorFlow's native log stays off stderr unless --verbose: a real import, fit, TFLite conversion, and
LiteRT and TFLM interpreters, in a subprocess whose stderr is read as a user's terminal would get it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What TensorFlow 2.21 prints natively (measured on a harlite build): absl/TF C++ lines such as
# "I0000 00:00:1796150867.27 9713 port.cc:153] oneDNN ...", "E0000 ... cuda_platform.cc:52] failed call to
# cuInit: ... CUDA error", "E0000 ... node_def_util.cc:682] NodeDef mentions attribute ...", the MLIR and
# SavedModel lines of the converter, absl's pre-init warning, the calibrator's and LiteRT's printf lines.
TF_LOG = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]|WARNING: All log messages before absl::InitializeLog"
    r"|To enable the following instructions|fully_quantize: |INFO: Created TensorFlow Lite)",
    re.MULTILINE,
)
SCRIPT = """
import os, sys, warnings
import numpy as np
warnings.simplefilter("ignore")  # Python warnings are not TensorFlow's native log
from harlite.tf import convert, keras, litert_interpreter, quiet, tensorflow, tfmot
tf, k = tensorflow(), keras()
tfmot()
k.utils.set_random_seed(0)
rng = np.random.default_rng(0)
windows = rng.normal(size=(8, 32, 3)).astype(np.float32)
inputs = k.Input(shape=(32, 3), batch_size=1)
x = k.layers.Conv1D(4, 5, strides=2, activation="relu")(inputs)
outputs = k.layers.Dense(2, activation="softmax")(k.layers.LSTM(4)(x))
model = k.Model(inputs, outputs)
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(windows, np.arange(8) % 2, epochs=1, verbose=0)  # tf.data's NodeDef lines
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = lambda: ([w[None]] for w in windows)
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = converter.inference_output_type = tf.int8
data = convert(converter)
from tflite_micro.python.tflite_micro import runtime
runtime.Interpreter.from_bytes(data, arena_size=64 * 1024)
litert_interpreter(data, num_threads=1)
with quiet():
    os.write(2, b"a native line that is not TensorFlow's\\n")
    print("harlite: a progress line inside a quiet block", file=sys.stderr)
print("harlite: done", len(data), file=sys.stderr)
open(sys.argv[1], "wb").write(data)
"""
# With --verbose: the import's and LiteRT's lines at least (the model comes from the run above).
VERBOSE_SCRIPT = """
import sys
from harlite.tf import litert_interpreter, tensorflow
tensorflow()
litert_interpreter(open(sys.argv[1], "rb").read())
print("harlite: done", file=sys.stderr)
"""


def _run(script: str, model: Path, verbose: bool) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "HARLITE_VERBOSE"))}
    env.update({"PYTHONPATH": str(REPO), **({"HARLITE_VERBOSE": "1"} if verbose else {})})
    done = subprocess.run([sys.executable, "-c", script, str(model)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tf_log") / "model.tflite"


@pytest.fixture(scope="module")
def quiet_stderr(model: Path) -> str:
    return _run(SCRIPT, model, verbose=False)


def test_no_tensorflow_log_by_default_and_other_lines_pass_through(quiet_stderr: str) -> None:
    assert TF_LOG.findall(quiet_stderr) == [], quiet_stderr
    lines = quiet_stderr.splitlines()
    assert lines[:2] == ["a native line that is not TensorFlow's", "harlite: a progress line inside a quiet block"]
    assert len(lines) == 3 and lines[2].startswith("harlite: done "), quiet_stderr  # in order, nothing else


def test_verbose_shows_the_log(quiet_stderr: str, model: Path) -> None:
    loud = _run(VERBOSE_SCRIPT, model, verbose=True)
    assert len(TF_LOG.findall(loud)) >= 3, loud  # absl's pre-init warning and lines at import, LiteRT's note
    assert "INFO: Created TensorFlow Lite" in loud and loud.rstrip().endswith("harlite: done")


def test_harlite_commands_print_no_tensorflow_log_unless_verbose(tiny_bundle: Path, tmp_path: Path,
                                                                 _session_cache: Path) -> None:  # fmt: skip
    """A real convert (qat's module imported first: it brings tfmot) prints no native line; --verbose does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "HARLITE_VERBOSE"))}
    env.update({"PYTHONPATH": str(REPO), "HARLITE_CACHE": str(_session_cache)})
    script = "import sys, harlite.pipeline.qat\nfrom harlite.cli import main\nmain(sys.argv[1:])"
    convert = [sys.executable, "-c", script, "convert", str(tiny_bundle.parent / "run"), "--out", str(tmp_path / "b"),
               "--calibration", "50"]  # fmt: skip
    evaluate = [sys.executable, "-m", "harlite", "--verbose", "evaluate", str(tiny_bundle / "model_int8.tflite")]
    quiet, loud = (subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
                   for argv in (convert, evaluate))  # fmt: skip
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr[-2000:] + loud.stderr[-2000:]
    assert TF_LOG.findall(quiet.stderr) == [] and "harlite convert: int8" in quiet.stderr, quiet.stderr
    assert "INFO: Created TensorFlow Lite" in loud.stderr, loud.stderr

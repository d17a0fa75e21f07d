"""One small interface over the runtimes a bundle's model runs in: Keras, LiteRT, TFLite Micro and the C engine.

``open_runtime(bundle, kind)`` (a ``harlite.bundle.loader.Bundle`` or a bundle's path, loaded and verified)
gives an object whose ``predict(windows)`` takes PHYSICAL front-end
windows (n, window, C) float32 and returns (n, classes) float32 probabilities. It standardizes them
with the manifest's normalization for float models, or quantizes them with ``harlite.core.frontend.quantize``
(exactly as the firmware does) for int8 models and dequantizes the int8 output. Int8 runtimes also
offer ``invoke_int8(q)`` on one quantized window, which is what the board runs.

Interpreters run one window per invoke, with every variable tensor reset first: the fused LSTM keeps
its state across invokes, and Keras starts every window from zero. They get the model's verified bytes
(``Bundle.read``), Keras the safely loaded model (``Bundle.keras_model``); ``runtime_for`` makes a runtime
of a model the caller loaded itself (``harlite evaluate`` of a loose file).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.loader import Bundle, load_bundle
from harlite.core.frontend import quantize, standardize
from harlite.errors import BundleError, HarliteError
from harlite.run.host_engine import HostEngine
from harlite.tf import litert_interpreter, quiet

REBUILD = "rebuild it with 'harlite convert'"

# kind -> the manifest artifact its model is read from
KINDS: dict[str, str] = {
    "keras": "keras",
    "litert-float32": "float32",
    "litert-float16": "float16",
    "litert-int8": "int8",
    "tflm": "int8",
    "c": "int8",  # harlite's C engine, the code the board runs without TFLM, compiled for this host
}


class Runtime:
    """A model of a bundle in one runtime; ``predict`` maps physical windows to probabilities.

    ``manifest`` is a validated manifest (``harlite.bundle``) or a run folder's protocol.json (with
    ``quantization`` for int8 models); ``name`` names the model file in messages.
    """

    def __init__(self, manifest: dict[str, Any], kind: str, name: str) -> None:
        self.manifest = manifest
        self.kind = kind
        self.name = name
        self.window = int(manifest["window"])
        self.channels = len(manifest["frontend"]["channels"])
        self.mean = np.asarray(manifest["normalization"]["mean"], np.float32)
        self.std = np.asarray(manifest["normalization"]["std"], np.float32)
        self.invokes = 0
        self.seconds = 0.0

    @property
    def ms_per_invoke(self) -> float:
        """Mean host time of one window's inference so far (for Keras: per window of a batch)."""
        return 1e3 * self.seconds / self.invokes if self.invokes else float("nan")

    def predict(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_windows(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows)
        if windows.ndim != 3 or windows.shape[1:] != (self.window, self.channels):
            raise BundleError(
                f"{self.kind}: windows must be (n, {self.window}, {self.channels}), got {windows.shape}: "
                "cut them with the bundle's front end (harlite.core.frontend)."
            )
        return windows


class KerasRuntime(Runtime):
    """The float tf-keras model, the reference; batched (Keras starts every window from zero state)."""

    def __init__(self, manifest: dict[str, Any], model: Any, name: str) -> None:
        super().__init__(manifest, "keras", name)
        self.model = model
        expected = (self.window, self.channels)
        if tuple(self.model.input_shape[1:]) != expected:
            raise _shape_error(name, tuple(self.model.input_shape[1:]), expected)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        x = standardize(self._check_windows(windows), self.mean, self.std)
        if not len(x):
            return np.zeros((0, len(self.manifest["labels"])), np.float32)
        start = time.perf_counter()
        probs = self.model.predict(x, batch_size=256, verbose=0)
        self.seconds += time.perf_counter() - start
        self.invokes += len(x)
        return np.asarray(probs, np.float32)


class _LiteRT:
    """LiteRT's interpreter on one .tflite model (batch 1)."""

    def __init__(self, model: bytes, name: str) -> None:
        try:
            self.interpreter = litert_interpreter(model, num_threads=1)
        except (ValueError, RuntimeError) as e:
            raise BundleError(f"LiteRT cannot load {name}: {_first_line(e)}; {REBUILD}.") from None
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        self.input_index, self.output_index = inp["index"], out["index"]
        self.input_shape, self.input_dtype = tuple(int(d) for d in inp["shape"]), np.dtype(inp["dtype"])
        self.input_quant, self.output_quant = _scalar_quant(inp["quantization"]), _scalar_quant(out["quantization"])

    def run(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        it.reset_all_variables()
        it.set_tensor(self.input_index, x[None])
        it.invoke()
        return it.get_tensor(self.output_index)[0]


class _TFLM:
    """TFLite Micro's Python interpreter (reference kernels) on one int8 .tflite model.

    The arena is the larger of the bundle's measured one and TFLM's default (10x the model): an arena
    too small for an int8 LSTM can crash this process, so the tight size is only probed in subprocesses
    (``harlite.pipeline.c_sources.measure_arena``).
    """

    def __init__(self, model: bytes, name: str, arena_bytes: int = 0) -> None:
        from tflite_micro.python.tflite_micro import runtime

        try:
            with quiet():
                self.interpreter = runtime.Interpreter.from_bytes(model, arena_size=max(arena_bytes, 10 * len(model)))
        except (RuntimeError, ValueError) as e:
            raise BundleError(f"TFLite Micro cannot load {name}: {_first_line(e)}; {REBUILD}.") from None
        inp = self.interpreter.get_input_details(0)
        out = self.interpreter.get_output_details(0)
        self.input_shape, self.input_dtype = tuple(int(d) for d in inp["shape"]), np.dtype(inp["dtype"])
        self.input_quant = _tflm_quant(inp["quantization_parameters"])
        self.output_quant = _tflm_quant(out["quantization_parameters"])

    def run(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        it.reset()
        it.set_input(x[None], 0)
        it.invoke()
        return np.array(it.get_output(0)[0])


class InterpreterRuntime(Runtime):
    """A .tflite model run one window per invoke, its LSTM state reset before each window."""

    def __init__(self, manifest: dict[str, Any], kind: str, model: bytes, name: str) -> None:
        super().__init__(manifest, kind, name)
        arena = int(manifest.get("tflm", {}).get("arena_bytes", 0))
        if kind == "c":
            self.engine = HostEngine(model)
        else:
            self.engine = _TFLM(model, name, arena) if kind == "tflm" else _LiteRT(model, name)
        expected = (1, self.window, self.channels)
        if self.engine.input_shape != expected:
            raise _shape_error(name, self.engine.input_shape, expected)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = self.engine.run(x)
        self.seconds += time.perf_counter() - start
        self.invokes += 1
        return out

    def _inputs(self, windows: np.ndarray) -> np.ndarray:
        return standardize(windows, self.mean, self.std)

    def _probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.astype(np.float32)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        x = self._inputs(self._check_windows(windows))
        outputs = np.array([self._invoke(xi) for xi in x]).reshape(len(x), -1)
        return self._probabilities(outputs)


class Int8Runtime(InterpreterRuntime):
    """The full-integer model: int8 windows in, int8 scores out (what the board computes)."""

    def __init__(self, manifest: dict[str, Any], kind: str, model: bytes, name: str) -> None:
        if "quantization" not in manifest:
            raise BundleError(f"{name}: the model's int8 input and output quantization is unknown (no manifest "
                              "'quantization'); convert it with 'harlite convert'.")  # fmt: skip
        super().__init__(manifest, kind, model, name)
        quant = manifest["quantization"]
        self.input_quant = (float(quant["input"]["scale"]), int(quant["input"]["zero_point"]))
        self.output_quant = (float(quant["output"]["scale"]), int(quant["output"]["zero_point"]))
        if self.engine.input_dtype != np.int8:
            raise BundleError(f"{name} takes {self.engine.input_dtype} input, not int8: "
                                       "regenerate it with 'harlite convert'.")  # fmt: skip
        for name, ours, model in (("input", self.input_quant, self.engine.input_quant),
                                  ("output", self.output_quant, self.engine.output_quant)):  # fmt: skip
            if not (np.isclose(ours[0], model[0], rtol=1e-6, atol=0) and ours[1] == model[1]):
                raise BundleError(
                    f"manifest quantization.{name} (scale {ours[0]:.9g}, zero point {ours[1]}) differs from "
                    f"{Path(name).name} (scale {model[0]:.9g}, zero point {model[1]}): rebuild the bundle "
                    "with 'harlite convert'."
                )

    def invoke_int8(self, q: np.ndarray) -> np.ndarray:
        """(classes,) int8 output of one quantized (window, C) int8 window."""
        q = np.asarray(q)
        if q.dtype != np.int8 or q.shape != (self.window, self.channels):
            raise BundleError(f"invoke_int8 takes a ({self.window}, {self.channels}) int8 window, "
                                       f"got {q.shape} {q.dtype}.")  # fmt: skip
        return self._invoke(q)

    def _inputs(self, windows: np.ndarray) -> np.ndarray:
        return quantize(windows, self.mean, self.std, *self.input_quant)

    def _probabilities(self, outputs: np.ndarray) -> np.ndarray:
        scale, zero_point = self.output_quant
        return ((outputs.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)


def open_runtime(bundle: Bundle | str | Path, kind: str) -> Runtime:
    """The bundle's model in runtime ``kind`` (one of ``KINDS``), from its verified artifact; ``bundle`` is
    a loaded ``Bundle`` or a bundle folder or manifest path (loaded and verified here)."""
    if kind not in KINDS:
        raise BundleError(f"unknown runtime {kind!r}: choose one of {', '.join(KINDS)}.")
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    name = str(bundle.root / bundle.entry(KINDS[kind])["file"])
    model = bundle.keras_model() if kind == "keras" else bundle.read(KINDS[kind])
    return runtime_for(bundle.manifest, kind, model, name)


def runtime_for(manifest: dict[str, Any], kind: str, model: Any, name: str) -> Runtime:
    """A runtime of ``kind`` for a model already loaded: a Keras model (``harlite.bundle.keras.load_keras``) for
    ``keras``, else the .tflite bytes; ``manifest`` describes its input (see ``Runtime``)."""
    if kind not in KINDS:
        raise BundleError(f"unknown runtime {kind!r}: choose one of {', '.join(KINDS)}.")
    if kind == "keras":
        return KerasRuntime(manifest, model, name)
    if KINDS[kind] == "int8":
        return Int8Runtime(manifest, kind, model, name)
    return InterpreterRuntime(manifest, kind, model, name)


def _shape_error(name: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> HarliteError:
    return BundleError(
        f"{Path(name).name} takes input {list(shape)} but the manifest describes {list(expected)} "
        "(window, channels): the model and manifest.json come from different builds; rebuild the bundle."
    )


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _scalar_quant(quantization: tuple[float, int]) -> tuple[float, int]:
    return float(quantization[0]), int(quantization[1])


def _tflm_quant(params: dict[str, Any]) -> tuple[float, int]:
    scales, zero_points = params["scales"], params["zero_points"]
    return (float(scales[0]), int(zero_points[0])) if len(scales) else (0.0, 0)

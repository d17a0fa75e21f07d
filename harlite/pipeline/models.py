"""Model architectures, their deployable export copy, and the cost of a window (MACs).

Two architectures (``MODELS``):

- ``cnn_lstm`` (the default, for microcontrollers): two Conv1D layers (32 and 40 filters, kernel 5,
  stride 2) with batch norm and ReLU shorten the 128-step window to 32 steps, one LSTM(40) reads
  those, a Dense layer gives the softmax. The convolutions do the cheap per-sample work, so the LSTM
  (the costly part) runs over a quarter of the steps. Widths chosen by measurement (docs/models.md).
- ``lstm``: the reference design of the original LSTM-HAR work, two stacked LSTM(32) over the raw
  channels, softmax over the classes.

The input is the standardized window ``(x - mean) / std`` (the manifest carries mean and std; the
device's front end does the scaling and int8 quantization in one step).

Training models keep batch norm. ``export_copy`` builds the deployable twin: the same architecture
with batch norm folded into the convolution before it (so int8 quantization sees the weights the
device will run) and, by default, a static batch of 1, from which the TFLite converter emits the
fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harlite.core.protocol import HAPT
from harlite.tf import keras

DEFAULT_MODEL = "cnn_lstm"


def _cnn_lstm(x: Any, deploy: bool, conv: tuple[int, ...] = (32, 40), kernel: int = 5, units: int = 40) -> Any:
    layers = keras().layers
    for i, filters in enumerate(conv):
        if deploy:
            x = layers.Conv1D(filters, kernel, strides=2, padding="same", activation="relu", name=f"conv{i}")(x)
        else:
            x = layers.Conv1D(filters, kernel, strides=2, padding="same", use_bias=False, name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
    return layers.LSTM(units, name="lstm")(x)


def _lstm(x: Any, deploy: bool, units: int = 32) -> Any:
    layers = keras().layers
    x = layers.LSTM(units, return_sequences=True, name="lstm0")(x)
    return layers.LSTM(units, name="lstm1")(x)


# name -> body(inputs, deploy) returning the features the softmax layer reads
MODELS: dict[str, Callable[..., Any]] = {"cnn_lstm": _cnn_lstm, "lstm": _lstm}


def build_model(
    name: str = DEFAULT_MODEL,
    n_channels: int = len(HAPT.frontend.channels),
    batch_size: int | None = None,
    window: int = HAPT.window,
    n_classes: int = HAPT.n_classes,
    deploy: bool = False,
    **options: Any,
) -> Any:
    """A fresh tf-keras model ``name`` taking (batch, window, n_channels) standardized windows.

    ``deploy=True`` gives the batch-norm-free twin that ``export_copy`` fills; ``options`` override the
    architecture's widths (e.g. ``conv=(32, 48), units=48`` for ``cnn_lstm``).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    k = keras()
    inputs = k.Input(shape=(window, n_channels), batch_size=batch_size, name="window")
    features = MODELS[name](inputs, deploy, **options)
    outputs = k.layers.Dense(n_classes, activation="softmax", name="classes")(features)
    return k.Model(inputs, outputs, name=name)


def architecture_options(model: Any) -> dict[str, Any]:
    """The widths a model was built with, read back from its layers (works on a loaded model too)."""
    conv = tuple(layer.filters for layer in model.layers if _kind(layer) == "Conv1D")
    lstm = [layer.units for layer in model.layers if _kind(layer) == "LSTM"]
    if model.name == "cnn_lstm":
        kernel = next(layer.kernel_size[0] for layer in model.layers if _kind(layer) == "Conv1D")
        return {"conv": conv, "kernel": kernel, "units": lstm[0]}
    if model.name == "lstm":
        return {"units": lstm[0]}
    raise ValueError(f"{model.name!r} is not a harlite model: build it with harlite.pipeline.models.build_model")


def export_copy(model: Any, batch_size: int | None = 1) -> Any:
    """The deployable twin of ``model``: batch norm folded into the convolutions, a static batch.

    Its outputs equal the trained model's (inference mode) up to float rounding.
    """
    _, window, n_channels = model.input_shape
    copy = build_model(
        model.name,
        n_channels=n_channels,
        batch_size=batch_size,
        window=window,
        n_classes=model.output_shape[-1],
        deploy=True,
        **architecture_options(model),
    )
    weighted = [layer for layer in model.layers if layer.weights]
    targets = iter(layer for layer in copy.layers if layer.weights)
    for i, layer in enumerate(weighted):
        if _kind(layer) == "BatchNormalization":
            continue
        weights = layer.get_weights()
        following = weighted[i + 1] if i + 1 < len(weighted) else None
        if following is not None and _kind(following) == "BatchNormalization":
            weights = fold_batch_norm(weights, following)
        next(targets).set_weights(weights)
    return copy


def fold_batch_norm(weights: list[np.ndarray], bn: Any) -> list[np.ndarray]:
    """[kernel, bias] of a convolution (with or without bias) followed by the batch norm ``bn``."""
    gamma, beta, mean, var = bn.get_weights()
    scale = gamma / np.sqrt(var + bn.epsilon)
    kernel = weights[0] * scale
    bias = weights[1] if len(weights) > 1 else np.zeros_like(mean)
    return [kernel.astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]


def count_params(model: Any) -> int:
    """Parameters of the deployed model (batch norm folded away)."""
    deployed = model if not any(_kind(layer) == "BatchNormalization" for layer in model.layers) else export_copy(model)
    return int(deployed.count_params())


def count_macs(model: Any) -> int:
    """Multiply-accumulates per window of the deployed model (Conv1D, LSTM gates, Dense).

    Element-wise work (activations, the LSTM's cell update) is not counted.
    """
    macs = 0
    for layer in model.layers:
        kind = _kind(layer)
        if kind == "Conv1D":
            _, steps, filters = layer.output_shape
            macs += steps * layer.kernel_size[0] * layer.input_shape[-1] * filters
        elif kind == "LSTM":
            steps, n_in = layer.input_shape[1], layer.input_shape[-1]
            macs += steps * 4 * layer.units * (n_in + layer.units)
        elif kind == "Dense":
            steps = int(np.prod(layer.input_shape[1:-1])) if len(layer.input_shape) > 2 else 1
            macs += steps * layer.input_shape[-1] * layer.units
    return int(macs)


def _kind(layer: Any) -> str:
    return type(layer).__name__

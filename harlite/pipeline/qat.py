"""Quantization-aware fine-tuning (the LSTM included) and the post-training-quantization baseline.

How the LSTM becomes quantization-aware: tfmot's default registry refuses ``LSTM``, its RNN config
made the int8 converter crash here, and converting any tfmot-wrapped LSTM gives a ``WHILE`` loop in
float instead of the fused int8 op. So QAT trains a twin and the converter never sees it:

0. PTQ and QAT both start from the float model with its input channels spread over the int8 input
   range (``convert.spread_input_ranges``, an exact rescaling): the int8 input's rounding was the
   whole of the int8 loss, and it is fixed there rather than trained around.
1. The deployable model (batch norm folded, ``models.export_copy``) is cloned with every weighted
   layer annotated by a QuantizeConfig of our own (``LayerQuantizeConfig``) and wrapped by tfmot's
   ``quantize_apply``. Its weight quantizer (``Int8WeightQuantizer``) fake-quantizes exactly as the
   TFLite converter quantizes: 8-bit symmetric, narrow range, scale = max|w| / 127, per output
   channel for Conv1D and Dense, and per gate for the LSTM's ``cell.kernel`` and
   ``cell.recurrent_kernel`` (the converter splits them into four gate matrices with one scale each);
   gradients pass straight through.
2. Each LSTM becomes an RNN over ``Int8StateLSTMCell``: the same weights and maths, but the hidden
   state is fake-quantized to int8 at every step, because the fused int8 kernel feeds back an int8
   hidden state. Activations (the input, each ReLU output, the logits before the softmax) are
   fake-quantized over fixed ranges (``CalibratedRangeQuantizer``) seeded from the calibration
   windows the converter uses and refreshed after every epoch. With PTQ's weights this twin predicts
   the class the converted int8 model predicts in LiteRT for 99.90% of the test windows (the float
   model: 99.37%), so QAT trains against the arithmetic the device runs.
3. After each epoch the trained weights, fake-quantized by the same rule in NumPy, are copied into
   the plain deployable model; converting that with calibration gives the fused int8
   ``UNIDIRECTIONAL_SEQUENCE_LSTM`` whose weights are exactly the QAT grid values.
4. QAT distils: it learns the float model's probabilities (a fixed 8-epoch cosine schedule from a
   small learning rate), so it repairs quantization error rather than re-training on the labels.
5. The PTQ baseline is the float model converted directly (500 calibration windows of training
   subjects). The final QAT model is kept if it at least matches PTQ on the validation subjects;
   both are reported on the test subjects either way (docs/models.md has the measurements: with the
   input ranges spread PTQ loses almost nothing, and QAT ties it rather than beating it).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.run_folder import save_model, write_model_input
from harlite.codegen.targets import DEFAULT_TARGET, get_target
from harlite.core.metrics import classification_metrics, plot_confusion
from harlite.io.files import atomic_write_bytes, check_writable, write_json
from harlite.io.locks import folder_lock
from harlite.pipeline.cluster import current, outside_strategy
from harlite.pipeline.convert import int8_ready, to_int8
from harlite.pipeline.evaluate import predicted_classes, score, tflite_model
from harlite.pipeline.fitting import predict_classes, start_backup
from harlite.pipeline.models import export_copy
from harlite.pipeline.train import BACKUP, echo_epoch, fit, load_run, make_feed, score_keras, seed_everything
from harlite.tf import tensorflow
from harlite.tf import tfmot as _tfmot

tf = tensorflow()
tfmot = _tfmot()  # after harlite.tf has set TensorFlow's environment (tfmot imports TensorFlow)

QUANTIZER_BITS = 8
LSTM_GATES = 4


def fake_quant_int8(w: np.ndarray, groups: int) -> np.ndarray:
    """Weights on the int8 grid: symmetric, scale max|w|/127 per block of the last axis (``groups`` blocks)."""
    w = np.asarray(w, np.float32)
    blocks = w.reshape(-1, groups, w.shape[-1] // groups)
    scale = np.maximum(np.abs(blocks).max(axis=(0, 2), keepdims=True), 1e-12) / 127.0
    return (np.clip(np.round(blocks / scale), -127, 127) * scale).reshape(w.shape).astype(np.float32)


class Int8WeightQuantizer(tfmot.quantization.keras.quantizers.Quantizer):
    """Fake-quantize a weight as the TFLite converter quantizes it; straight-through gradient.

    ``gates`` = 0 means one scale per output channel (Conv1D, Dense); 4 means one scale per LSTM gate.
    """

    def __init__(self, gates: int = 0) -> None:
        self.gates = gates

    def build(self, tensor_shape: Any, name: str, layer: Any) -> dict[str, Any]:
        return {}

    def __call__(self, inputs: Any, training: Any, weights: dict[str, Any], **kwargs: Any) -> Any:
        groups = self.gates or inputs.shape[-1]
        blocks = tf.reshape(inputs, [-1, groups, inputs.shape[-1] // groups])
        scale = tf.maximum(tf.reduce_max(tf.abs(blocks), axis=[0, 2], keepdims=True), 1e-12) / 127.0
        quantized = tf.reshape(tf.clip_by_value(tf.round(blocks / scale), -127.0, 127.0) * scale, tf.shape(inputs))
        return inputs + tf.stop_gradient(quantized - inputs)

    def get_config(self) -> dict[str, Any]:
        return {"gates": self.gates}


class CalibratedRangeQuantizer(tfmot.quantization.keras.quantizers.Quantizer):
    """8-bit asymmetric fake quantization over a fixed [min, max] that ``seed_ranges`` sets."""

    def build(self, tensor_shape: Any, name: str, layer: Any) -> dict[str, Any]:
        def variable(suffix: str, value: float) -> Any:
            initializer = tf.keras.initializers.Constant(value)
            return layer.add_weight(f"{name}_{suffix}", initializer=initializer, trainable=False)

        return {"min_var": variable("min", -6.0), "max_var": variable("max", 6.0)}

    def __call__(self, inputs: Any, training: Any, weights: dict[str, Any], **kwargs: Any) -> Any:
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, weights["min_var"], weights["max_var"], num_bits=QUANTIZER_BITS, narrow_range=False
        )

    def get_config(self) -> dict[str, Any]:
        return {}


class Int8StateLSTMCell(tf.keras.layers.LSTMCell):
    """An LSTMCell whose hidden state is fake-quantized to int8 at every step, as the fused int8 LSTM keeps it.

    The int8 kernel feeds back an int8 hidden state (the scale of the layer's output), so rounding
    errors enter the recurrence at every step; this cell lets QAT see and compensate for them.
    """

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        constant = tf.keras.initializers.Constant
        self.h_min = self.add_weight(name="h_min", shape=(), initializer=constant(-1.0), trainable=False)
        self.h_max = self.add_weight(name="h_max", shape=(), initializer=constant(1.0), trainable=False)

    def call(self, inputs: Any, states: Any, training: Any = None) -> Any:
        h, (_, c) = super().call(inputs, states, training=training)
        h = tf.quantization.fake_quant_with_min_max_vars(h, self.h_min, self.h_max, num_bits=QUANTIZER_BITS)
        return h, [h, c]


class LayerQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """Weights (by attribute path) with ``Int8WeightQuantizer``; the activation or the output with a fixed range.

    ``weights`` are attribute paths such as ``"kernel"`` or ``"cell.recurrent_kernel"``;
    ``activation`` quantizes the layer's ``activation`` (ReLU after, softmax before, as tfmot does);
    ``output`` quantizes the layer's output (the LSTM, whose internals the int8 kernel handles itself).
    """

    def __init__(self, weights: tuple[str, ...], gates: int = 0, activation: bool = False, output: bool = False):
        self.weights, self.gates, self.activation, self.output = tuple(weights), gates, activation, output

    def _owner(self, layer: Any, path: str) -> tuple[Any, str]:
        *parents, attr = path.split(".")
        for parent in parents:
            layer = getattr(layer, parent)
        return layer, attr

    def get_weights_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
        return [(getattr(*self._owner(layer, p)), Int8WeightQuantizer(self.gates)) for p in self.weights]

    def get_activations_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
        return [(layer.activation, CalibratedRangeQuantizer())] if self.activation else []

    def set_quantize_weights(self, layer: Any, quantize_weights: list[Any]) -> None:
        for path, weight in zip(self.weights, quantize_weights):
            setattr(*self._owner(layer, path), weight)

    def set_quantize_activations(self, layer: Any, quantize_activations: list[Any]) -> None:
        if self.activation:
            layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer: Any) -> list[Any]:
        return [CalibratedRangeQuantizer()] if self.output else []

    def get_config(self) -> dict[str, Any]:
        return {"weights": self.weights, "gates": self.gates, "activation": self.activation, "output": self.output}


def _layer_config(layer: Any, per_channel_dense: bool = False) -> LayerQuantizeConfig:
    """The layer's quantization, as the converter will write it: Conv1D per output channel, Dense per
    channel or per tensor (``per_channel_dense``, see harlite.codegen.targets), the LSTM per gate."""
    kind = type(layer).__name__
    if kind in ("LSTM", "RNN"):  # the hidden state is quantized by Int8StateLSTMCell itself
        return LayerQuantizeConfig(("cell.kernel", "cell.recurrent_kernel"), gates=LSTM_GATES)
    if kind == "Conv1D" or (kind == "Dense" and per_channel_dense):
        return LayerQuantizeConfig(("kernel",), activation=True)
    if kind == "Dense":
        return LayerQuantizeConfig(("kernel",), gates=1, activation=True)
    raise ValueError(f"no quantization config for a {kind} layer")


CUSTOM_OBJECTS = {
    "LayerQuantizeConfig": LayerQuantizeConfig,
    "Int8WeightQuantizer": Int8WeightQuantizer,
    "CalibratedRangeQuantizer": CalibratedRangeQuantizer,
    "Int8StateLSTMCell": Int8StateLSTMCell,
}


def quantize_aware(deployable: Any, per_channel_dense: bool = False) -> Any:
    """tfmot QAT model of a deployable (batch-norm-free) model, with its weights.

    Every weighted layer is annotated with a ``LayerQuantizeConfig``; each LSTM becomes an RNN over an
    ``Int8StateLSTMCell`` (same weights, same maths, int8 hidden state).
    """
    q = tfmot.quantization.keras

    def annotate(layer: Any) -> Any:
        if type(layer).__name__ == "LSTM":
            cell = Int8StateLSTMCell(layer.units, name=f"{layer.name}_cell")
            fresh = tf.keras.layers.RNN(cell, return_sequences=layer.return_sequences, name=layer.name)
        else:
            fresh = layer.__class__.from_config(layer.get_config())
        return q.quantize_annotate_layer(fresh, _layer_config(layer, per_channel_dense)) if layer.weights else fresh

    annotated = tf.keras.models.clone_model(deployable, clone_function=annotate)
    with q.quantize_scope(CUSTOM_OBJECTS):
        model = q.quantize_apply(annotated)
    for layer in deployable.layers:
        if layer.weights:
            target = {_short(v): v for v in model.get_layer(f"quant_{layer.name}").trainable_weights}
            for variable in layer.weights:
                target[_short(variable)].assign(variable)
    return model


def quantized_copy(qat_model: Any, deployable: Any, per_channel_dense: bool = False) -> Any:
    """``deployable`` (changed in place and returned) with the QAT model's weights, on the int8 grid."""
    for layer in deployable.layers:
        if not layer.weights:
            continue
        config = _layer_config(layer, per_channel_dense)
        quantized = {p.split(".")[-1] for p in config.weights}
        trained = {_short(v): v.numpy() for v in qat_model.get_layer(f"quant_{layer.name}").trainable_weights}
        weights = []
        for variable in layer.weights:
            w = trained[_short(variable)]
            weights.append(fake_quant_int8(w, config.gates or w.shape[-1]) if _short(variable) in quantized else w)
        layer.set_weights(weights)
    return deployable


def _short(variable: Any) -> str:
    """``kernel`` for a variable named ``lstm/lstm_cell/kernel:0``."""
    return variable.name.split("/")[-1].split(":")[0]


def activation_ranges(deployable: Any, calibration: np.ndarray) -> dict[str, tuple[float, float]]:
    """Min/max over the calibration windows of every tensor the QAT model fake-quantizes.

    Keys are ``input``, ``<layer>/post_activation`` (Conv1D after ReLU), ``<layer>/h`` (an LSTM's
    hidden state over all steps, which the int8 kernel stores at the output's scale) and
    ``<layer>/pre_activation`` (Dense logits before the softmax), as the converter calibrates them.
    """
    weighted = [layer for layer in deployable.layers if layer.weights]
    probe = tf.keras.Model(deployable.inputs, [layer.input for layer in weighted] + [layer.output for layer in weighted])
    values = probe.predict(calibration, batch_size=256, verbose=0)
    ranges = {"input": (float(calibration.min()), float(calibration.max()))}
    for layer, x, y in zip(weighted, values[: len(weighted)], values[len(weighted) :]):
        kind = type(layer).__name__
        if kind == "Dense":
            kernel, bias = layer.get_weights()
            logits = x @ kernel + bias
            ranges[f"{layer.name}/pre_activation"] = (float(logits.min()), float(logits.max()))
        elif kind == "LSTM":
            sequence = tf.keras.layers.LSTM(layer.units, return_sequences=True)
            sequence.build(x.shape)
            sequence.set_weights(layer.get_weights())
            h = sequence(x).numpy()
            ranges[f"{layer.name}/h"] = (float(h.min()), float(h.max()))
        else:
            ranges[f"{layer.name}/post_activation"] = (float(y.min()), float(y.max()))
    return ranges


def seed_ranges(qat_model: Any, ranges: dict[str, tuple[float, float]]) -> None:
    """Set the QAT model's activation quantizer ranges (and the input quantizer's) to ``ranges``."""
    for key, (lo, hi) in ranges.items():
        name, _, point = key.partition("/")
        if key == "input":
            layer = next(layer for layer in qat_model.layers if type(layer).__name__ == "QuantizeLayer")
        else:
            layer = qat_model.get_layer(f"quant_{name}")
        for suffix, value in (("min", min(lo, 0.0)), ("max", max(hi, 0.0))):
            (variable,) = [v for v in layer.non_trainable_weights if _short(v).endswith(f"{point}_{suffix}")]
            variable.assign(value)


QAT_EPOCHS = 8
QAT_LEARNING_RATE = 1e-4
QAT_FILES = ("model.keras", "protocol.json", "model_int8.tflite", "ptq_int8.tflite", "qat_int8.tflite", "metrics.json")


def qat(
    run_dir: str | Path,
    epochs: int = QAT_EPOCHS,
    learning_rate: float = QAT_LEARNING_RATE,
    calibration: int = 500,
    force: bool = False,
    split: Any = None,
    distill: bool = True,
    target: str = DEFAULT_TARGET,
) -> dict[str, Any]:
    """QAT fine-tuning of the float model in ``run_dir``, beside its PTQ baseline; writes ``run_dir/qat``.

    QAT runs a fixed cosine schedule of ``epochs``; with ``distill`` (the default) it learns the float
    model's probabilities rather than the labels, so it repairs quantization error instead of
    re-training. Every epoch's int8 model is converted and scored in LiteRT on the validation
    subjects (recorded in the history). The final QAT int8 model is kept if it at least matches PTQ
    int8 on the validation subjects (the training windows when there are none), otherwise PTQ is kept;
    both are scored on the test subjects. ``split`` defaults to the run's own data; ``target`` (the
    TFLM the firmware builds against) decides whether Dense weights are quantized per channel. Returns
    the metrics written to ``run_dir/qat/metrics.json``.
    """
    run_dir, out = Path(run_dir), Path(run_dir) / "qat"
    cluster = current()  # first: TensorFlow forms a cluster only before it runs anything
    chief = cluster.chief
    with folder_lock(out) if chief else contextlib.nullcontext():  # one writer: a second harlite writing run_dir/qat is refused
        for name in QAT_FILES if chief else ():
            check_writable(out / name, force)
        per_channel_dense = get_target(target).per_channel_dense
        float_model, config, data = load_run(run_dir, split)
        selection, selected_on = (data.val, "validation") if len(data.val) else (data.train, "training")
        seed_everything(config.seed)
        float_model, std, reference = int8_ready(float_model, data.split.pool, data.mean, data.std, calibration)
        data = replace(data, std=std)
        model_input = data.model_input()
        base = model_input.to_dict()
        labels = data.protocol.labels
        truth, float_val = predict_classes(float_model, selection, data.mean, data.std)

        def int8_candidate(model: Any) -> dict[str, Any]:
            tflite = to_int8(model, reference, per_channel_dense)
            _, predicted = predicted_classes(tflite_model(tflite, base), selection)
            val = classification_metrics(truth, predicted, labels)
            return {"model": model, "tflite": tflite, "val": val, "agreement": float(np.mean(predicted == float_val))}

        def candidate_of(model: Any) -> dict[str, Any]:
            """The int8 model of the QAT model's weights now, and the ranges seen there (made outside any
            distribution strategy: plain Keras models, converted as the device will run them)."""
            candidate = int8_candidate(quantized_copy(model, export_copy(float_model, batch_size=None), per_channel_dense))
            return {**candidate, "ranges": activation_ranges(candidate["model"], reference)}

        start = time.perf_counter()
        ptq = int8_candidate(export_copy(float_model, batch_size=None))
        print(f"harlite qat: PTQ int8 {selected_on} accuracy {ptq['val']['accuracy']:.4f}", file=sys.stderr)
        first_ranges = activation_ranges(ptq["model"], reference)
        notes = [start_backup(out / BACKUP, {"run": str(run_dir), "epochs": epochs, "learning_rate": learning_rate,
                                             "distill": distill, "target": target})] if chief else []  # fmt: skip
        for note in filter(None, notes):
            print(f"harlite qat: note: {note}", file=sys.stderr)

        def make() -> Any:
            model = quantize_aware(export_copy(float_model, batch_size=None), per_channel_dense)
            seed_ranges(model, first_ranges)
            return model

        final: dict[str, Any] = {}

        def after_epoch(epoch: int, row: dict[str, float], model: Any) -> dict[str, float]:
            candidate = outside_strategy(candidate_of, model)
            seed_ranges(model, candidate["ranges"])
            final.update(candidate)
            return {"int8_val_accuracy": candidate["val"]["accuracy"], "int8_val_macro_f1": candidate["val"]["macro_f1"],
                    "int8_val_agreement_with_float": candidate["agreement"]}  # fmt: skip

        feed = make_feed(data, config, epochs, teacher=distill)
        qat_model, history = fit(make, data, feed, learning_rate, after_epoch, teacher=float_model if distill else None,
                                 backup=out / BACKUP, progress=echo_epoch("qat", epochs))  # fmt: skip
        if not final:  # resumed after the last epoch's checkpoint: nothing was left to train
            final.update(candidate_of(qat_model))
        if not chief:
            return {"worker": cluster.rank}
        seconds = time.perf_counter() - start
        use_qat = final["val"]["accuracy"] >= ptq["val"]["accuracy"]
        chosen = final if use_qat else ptq
        test = {
            "float": score_keras(float_model, data, data.test),
            "ptq_int8": score(tflite_model(ptq["tflite"], base), data.test),
            "qat_int8": score(tflite_model(final["tflite"], base), data.test),
        }
        test["int8"] = test["qat_int8" if use_qat else "ptq_int8"]
        test["keras"] = score_keras(chosen["model"], data, data.test)
        relation = "matches or beats" if use_qat else "scores below"
        reason = (f"QAT int8 {relation} PTQ int8 on the {selected_on} windows: accuracy "
                  f"{final['val']['accuracy']:.4f} vs {ptq['val']['accuracy']:.4f}")  # fmt: skip
        metrics = {
            "chosen": "qat" if use_qat else "ptq",
            "reason": reason,
            "val": {"ptq_int8": ptq["val"], "qat_int8": final["val"]},
            "val_agreement_with_float": {"ptq_int8": ptq["agreement"], "qat_int8": final["agreement"]},
            "test": test,
            "qat_seconds": seconds,
            "qat": {"epochs": epochs, "learning_rate": learning_rate, "distill": distill, "history": history,
                    "selected_on": selected_on},
            "calibration_windows": len(reference),
            "target": target,
        }
        save_model(chosen["model"], out / "model.keras")
        for name, tflite in (("model", chosen["tflite"]), ("ptq", ptq["tflite"]), ("qat", final["tflite"])):
            atomic_write_bytes(out / f"{name}_int8.tflite", tflite)
        write_model_input(out, model_input)
        write_json(out / "metrics.json", metrics)
        plot_confusion(test["int8"]["confusion"], labels, out / "confusion_int8.png", title=f"{metrics['chosen']} int8")
        print(f"harlite qat: {metrics['reason']}; kept {metrics['chosen']}. Test accuracy: float "
              f"{test['float']['accuracy']:.4f}, PTQ int8 {test['ptq_int8']['accuracy']:.4f}, QAT int8 "
              f"{test['qat_int8']['accuracy']:.4f} -> {out}", file=sys.stderr)  # fmt: skip
    return metrics

"""Float training: seeded, reproducible, subject-wise validation, a run folder with everything.

The schedule is fixed (``epochs`` of Adam with a cosine-decaying learning rate) rather than early
stopping: validation accuracy on a few held-out subjects swings by several points from one epoch to
the next (the sitting/standing boundary of one subject flips), so its best epoch is noise, while
the end of a long cosine schedule is steady across seeds (docs/models.md has the measurements).
The validation subjects stay out of training: their accuracy is reported per epoch, and
``harlite qat`` decides between QAT and PTQ on them.

Training sees standardized windows with augmentation that keeps the model's input contract: a small
random rotation of the device (the same for every x/y/z triplet of a window; subjects wear the
phone at slightly different angles, which is what confuses sitting with standing), a random gain
per sensor and Gaussian noise. With ``mounting="any"`` every window is first turned about the vertical
axis (uniform) and tilted up to ``mounting_tilt_deg``: the model then survives a device worn turned or
the other way round, but it can no longer use the direction of the device's tilt, which on HAPT is what
tells sitting from standing (docs/field.md: about 3 points of accuracy), so it is not the default.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.run_folder import ModelInput, load_model, read_model_input, save_model, versions, write_model_input
from harlite.core.frontend import standardize
from harlite.core.metrics import classification_metrics, plot_confusion
from harlite.core.orientation import mounting_rotations, rotate_windows
from harlite.core.protocol import Protocol
from harlite.data.windows import DataSpec, Split, WindowSet, check_folders, load_split
from harlite.io.files import atomic_write_bytes, check_writable, read_json, write_json
from harlite.io.locks import folder_lock
from harlite.pipeline.models import DEFAULT_MODEL, build_model, count_macs, count_params, export_copy
from harlite.tf import keras, tensorflow

RUN_FILES = ("model.keras", "protocol.json", "history.json", "metrics.json", "learning_curves.png", "confusion.png")
# Small data: enough optimizer steps whatever the amount of data (within bounds), smaller batches.
MIN_STEPS, MIN_EPOCHS, MAX_EPOCHS = 6000, 80, 400
MOUNTINGS = ("fixed", "any")  # the device worn as in the training data, or turned any way about the vertical
IMBALANCE_RATIO = 2.0  # class weights when the largest class has more than this many times the smallest's windows


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained model (with the data and the seed); ``None`` = chosen from the data."""

    model: str = DEFAULT_MODEL
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float = 3e-3
    seed: int = 0
    gain_sigma: float = 0.1
    noise_sigma: float = 0.05
    rotation_deg: float = 20.0
    mounting: str = "fixed"  # "any": train for a device turned about the vertical axis (MOUNTINGS)
    mounting_tilt_deg: float = 20.0
    class_weights: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mounting not in MOUNTINGS:
            raise ValueError(f"mounting must be one of {', '.join(MOUNTINGS)}, got {self.mounting!r}")

    def for_data(self, train: WindowSet, n_classes: int) -> TrainConfig:
        """This config with the settings left to the data chosen for it (docs/models.md, "Small data").

        Batch 64 from 2,048 windows (32 below, 16 under 256); epochs enough for about 6,000 optimizer steps,
        80 to 400 (HAPT: 80); class weights when classes are unequal by more than 2 to 1.
        """
        n = len(train)
        batch = self.batch_size or (64 if n >= 2048 else 32 if n >= 256 else 16)
        steps = max(1, math.ceil(n / batch))
        epochs = self.epochs or int(np.clip(math.ceil(MIN_STEPS / steps), MIN_EPOCHS, MAX_EPOCHS))
        counts = np.bincount(train.y, minlength=n_classes)
        present = counts[counts > 0]
        weights = self.class_weights
        if weights is None:
            weights = bool(len(present) and present.max() > IMBALANCE_RATIO * present.min())
        return replace(self, batch_size=batch, epochs=epochs, class_weights=weights)


@dataclass
class Data:
    """A split's windows with the normalization of its training part."""

    split: Split
    mean: np.ndarray
    std: np.ndarray

    @property
    def protocol(self) -> Protocol:
        return self.split.protocol

    @property
    def train(self) -> WindowSet:
        return self.split.train

    @property
    def val(self) -> WindowSet:
        return self.split.val

    @property
    def test(self) -> WindowSet:
        return self.split.test

    def standardized(self, part: WindowSet) -> np.ndarray:
        return standardize(part.X, self.mean, self.std)

    def model_input(self) -> ModelInput:
        return ModelInput(self.protocol, self.mean, self.std, self.split.spec, self.split.info())


def prepare_data(split: Split) -> Data:
    """A split with the normalization of its training windows."""
    mean, std = split.train.normalization()
    return Data(split, mean, std)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    tf = tensorflow()
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def augment(X: np.ndarray, data: Data, rng: np.random.Generator, config: TrainConfig) -> np.ndarray:
    """Standardized copies of physical windows: with ``config.mounting`` "any" a turn of the device about the
    vertical axis and a tilt (``harlite.core.orientation.mounting_rotations``), then a random small rotation
    of the device (the same for every sensor triplet), a random gain per sensor, Gaussian noise. Pure: the
    same windows and generator state give the same batch (either input path can call it)."""
    n, _, channels = X.shape
    names = data.protocol.frontend.channels
    if config.mounting == "any":
        X = rotate_windows(X, names, mounting_rotations(n, rng, config.mounting_tilt_deg))
    X = rotate_windows(X, names, random_rotations(n, config.rotation_deg, rng)) if config.rotation_deg else X
    sensor = np.array(["gyro" in c for c in names[:channels]], dtype=int)
    gain = rng.normal(1.0, config.gain_sigma, size=(n, 1, 2)).astype(np.float32)[:, :, sensor]
    noise = rng.normal(0.0, config.noise_sigma, size=X.shape).astype(np.float32)
    return standardize(X * gain, data.mean, data.std) + noise


def random_rotations(n: int, sigma_deg: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotation matrices about random axes by normally distributed angles (Rodrigues)."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.deg2rad(rng.normal(0.0, sigma_deg, size=(n, 1, 1)))
    K = np.zeros((n, 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    K -= K.transpose(0, 2, 1)
    return (np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K).astype(np.float32)


def fit(
    model: Any,
    data: Data,
    config: TrainConfig,
    epochs: int,
    learning_rate: float,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    teacher: Any = None,
) -> list[dict[str, float]]:
    """Train ``model`` on ``data.train`` with a cosine schedule; returns per-epoch loss/accuracy history.

    With a ``teacher`` model the targets are its probabilities for the same augmented windows
    (distillation) instead of the labels, and the training "accuracy" is agreement with the teacher.
    Validation loss and accuracy are always against the labels.
    """
    k = keras()
    steps = int(np.ceil(len(data.train) / config.batch_size))
    schedule = k.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps))
    loss = "categorical_crossentropy" if teacher is not None else "sparse_categorical_crossentropy"
    model.compile(optimizer=k.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])
    rng = np.random.default_rng(config.seed)
    Xv, yv = data.standardized(data.val), data.val.y
    weights = class_weights(data.train.y, data.protocol.n_classes) if config.class_weights and teacher is None else None
    history = []
    for epoch in range(epochs):
        start = time.perf_counter()
        Xa = augment(data.train.X, data, rng, config)
        targets = data.train.y if teacher is None else keras_predict(teacher, Xa)
        sample_weight = None if weights is None else weights[data.train.y]
        h = model.fit(Xa, targets, sample_weight=sample_weight, batch_size=config.batch_size, epochs=1, shuffle=True,
                      verbose=0)  # fmt: skip
        row = {"epoch": epoch + 1, "loss": h.history["loss"][-1],
               "accuracy" if teacher is None else "teacher_agreement": h.history["accuracy"][-1]}  # fmt: skip
        if len(yv):
            p = keras_predict(model, Xv)
            row["val_loss"] = -np.mean(np.log(np.clip(p[np.arange(len(yv)), yv], 1e-7, 1.0)))
            row["val_accuracy"] = np.mean(p.argmax(-1) == yv)
        row["seconds"] = time.perf_counter() - start
        history.append({k_: float(v) for k_, v in row.items()})
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    return history


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class n / (classes present x windows of the class): every class weighs the same in the loss."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes, np.float32)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights


def echo_epoch(prefix: str, epochs: int) -> Callable[[int, dict[str, float]], None]:
    """A progress line on stderr per epoch."""

    def echo(epoch: int, row: dict[str, float]) -> None:
        fit_ = f"acc {row['accuracy']:.4f}" if "accuracy" in row else f"agreement {row['teacher_agreement']:.4f}"
        val = f" val_acc {row['val_accuracy']:.4f}" if "val_accuracy" in row else ""
        print(f"{prefix} epoch {epoch + 1}/{epochs}: loss {row['loss']:.4f} {fit_}{val} ({row['seconds']:.1f} s)",
              file=sys.stderr)  # fmt: skip

    return echo


def keras_predict(model: Any, X_std: np.ndarray) -> np.ndarray:
    """Class probabilities of a Keras model for standardized windows."""
    return model.predict(X_std, batch_size=256, verbose=0)


def score_keras(model: Any, data: Data, part: WindowSet) -> dict[str, Any] | None:
    """classification_metrics of a Keras model on a part of ``data`` (None for an empty part)."""
    if not len(part):
        return None
    predicted = keras_predict(model, data.standardized(part)).argmax(-1)
    return classification_metrics(part.y, predicted, data.protocol.labels)


def train(
    out: str | Path,
    config: TrainConfig = TrainConfig(),
    force: bool = False,
    split: Split | None = None,
    data_spec: DataSpec = DataSpec(),
) -> dict[str, Any]:
    """Train a float model into the run folder ``out``; returns the metrics written to metrics.json.

    ``split`` (default: ``load_split(data_spec)``) gives the windows. The run folder gets model.keras,
    protocol.json, history.json, metrics.json, learning_curves.png and confusion.png (``RUN_FILES``).
    """
    out = Path(out)
    if split is None and data_spec.own:
        check_folders(data_spec, out)
    with folder_lock(out):  # one writer: a second harlite training into out is refused
        for name in RUN_FILES:
            check_writable(out / name, force)
        data = prepare_data(load_split(data_spec) if split is None else split)
        config = config.for_data(data.train, data.protocol.n_classes)
        seed_everything(config.seed)
        protocol = data.protocol
        model = build_model(config.model, n_channels=len(protocol.frontend.channels), window=protocol.window,
                            n_classes=protocol.n_classes, **config.options)  # fmt: skip
        print(
            f"harlite train: {config.model}, {count_params(model)} parameters, {len(data.train)} training windows "
            f"({len(set(data.train.group.tolist()))} {data.split.kind}s), {len(data.val)} validation, {len(data.test)} "
            f"test; {config.epochs} epochs of batch {config.batch_size}{', class weights' if config.class_weights else ''}",
            file=sys.stderr,
        )
        for warning in data.split.warnings:
            print(f"harlite train: note: {warning}", file=sys.stderr)
        start = time.perf_counter()
        history = fit(model, data, config, config.epochs, config.learning_rate, echo_epoch("train", config.epochs))
        seconds = time.perf_counter() - start
        test, val = (score_keras(model, data, part) for part in (data.test, data.val))
        metrics = {
            "test": {"float": test},
            "val": {"float": val},
            "model": model_info(model),
            "train_seconds": seconds,
            "config": asdict(config),
            "split": data.split.info(),
            "warnings": data.split.warnings,
            "versions": versions(),
        }
        save_model(model, out / "model.keras")
        write_model_input(out, data.model_input())
        write_json(out / "history.json", history)
        write_json(out / "metrics.json", metrics)
        plot_history(history, out / "learning_curves.png")
        plot_confusion(
            test["confusion"], protocol.labels, out / "confusion.png", title=f"{config.model} float, test split"
        )
        print(
            f"harlite train: test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} -> {out}",
            file=sys.stderr,
        )
    return metrics


def load_run(run_dir: str | Path, split: Split | None = None) -> tuple[Any, TrainConfig, Data]:
    """A run folder's float model, training config and data (its split, with the run's normalization).

    ``split`` defaults to the run's own data (``protocol.json``'s dataset), cut with the run's protocol.
    """
    run_dir = Path(run_dir)
    model = load_model(run_dir / "model.keras")
    known = set(TrainConfig.__dataclass_fields__)
    config = TrainConfig(**{k: v for k, v in read_json(run_dir / "metrics.json")["config"].items() if k in known})
    model_input = read_model_input(run_dir)
    split = load_split(model_input.data, model_input.protocol) if split is None else split
    return model, config, Data(split, model_input.mean, model_input.std)


def model_info(model: Any) -> dict[str, Any]:
    """Architecture, deployed parameter count and MACs per window."""
    return {
        "architecture": model.name,
        "params": count_params(model),
        "macs_per_window": count_macs(export_copy(model)),
    }


def plot_history(history: list[dict[str, float]], path: Path) -> Path:
    """Learning curves (loss and accuracy, training and validation) as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [row[key] for row in history], label="train (augmented)")
        if history and f"val_{key}" in history[0]:
            ax.plot(epochs, [row[f"val_{key}"] for row in history], label="validation subjects")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())

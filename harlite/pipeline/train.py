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
``augment`` is applied per batch, seeded from (seed, epoch, worker, batch), inside the tf.data feed
(``harlite.pipeline.feed``); the loop itself is ``harlite.pipeline.fitting.fit``, on one device or several
workers (``harlite.pipeline.cluster``).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.run_folder import load_model, read_model_input, save_model, versions, write_model_input
from harlite.core.frontend import standardize
from harlite.core.metrics import plot_confusion
from harlite.core.orientation import mounting_rotations, rotate_windows
from harlite.data.shards import ShardedWindows
from harlite.data.windows import IN_MEMORY_BYTES, DataSpec, Split, Windows, check_folders, load_split
from harlite.io.files import atomic_write_bytes, check_writable, read_json, write_json
from harlite.io.locks import folder_lock
from harlite.pipeline.cluster import current
from harlite.pipeline.feed import Feed, Prepare
from harlite.pipeline.fitting import (  # noqa: F401  (qat and the tests use these from here too)
    Data,
    class_weights,
    echo_epoch,
    fit,
    keras_predict,
    prepare_data,
    score_keras,
    seed_everything,
    start_backup,
)
from harlite.pipeline.models import DEFAULT_MODEL, build_model, count_macs, count_params, export_copy

BACKUP = "backup"  # in the run folder while training: the last finished epoch, to resume from
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
    stream: bool | None = None  # windows streamed from the window store; None: when the split is large

    def __post_init__(self) -> None:
        if self.mounting not in MOUNTINGS:
            raise ValueError(f"mounting must be one of {', '.join(MOUNTINGS)}, got {self.mounting!r}")

    def for_data(self, train: Windows, n_classes: int) -> TrainConfig:
        """This config with the settings left to the data chosen for it (docs/models.md, "Small data").

        Batch 64 from 2,048 windows (32 below, 16 under 256); epochs enough for about 6,000 optimizer steps,
        80 to 400 (HAPT: 80); class weights when classes are unequal by more than 2 to 1.
        """
        n = len(train)
        batch = self.batch_size or (64 if n >= 2048 else 32 if n >= 256 else 16)
        steps = max(1, math.ceil(n / batch))
        epochs = self.epochs or int(np.clip(math.ceil(MIN_STEPS / steps), MIN_EPOCHS, MAX_EPOCHS))
        counts = train.label_counts(n_classes)
        present = counts[counts > 0]
        weights = self.class_weights
        if weights is None:
            weights = bool(len(present) and present.max() > IMBALANCE_RATIO * present.min())
        return replace(self, batch_size=batch, epochs=epochs, class_weights=weights)


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


def prepare_batch(data: Data, config: TrainConfig) -> Prepare:
    """The feed's per-batch hook: ``augment`` with a generator seeded by (seed, epoch, worker, batch)."""

    def prepare(X: np.ndarray, seed: np.ndarray) -> np.ndarray:
        return augment(X, data, np.random.default_rng(np.asarray(seed, np.int64).tolist()), config)

    return prepare


def make_feed(data: Data, config: TrainConfig, epochs: int, teacher: bool = False) -> Feed:
    """How ``data.train`` reaches the model: streamed when the split is larger than the in-memory limit (or
    ``config.stream`` says so), class weights when ``config.class_weights`` (not when distilling)."""
    stream = (config.stream if config.stream is not None else not data.split.in_memory) and \
        isinstance(data.train, ShardedWindows)  # fmt: skip
    n = data.protocol.n_classes
    weights = class_weights(data.train.label_counts(n)) if config.class_weights and not teacher else np.ones(n, np.float32)
    return Feed(config.seed, epochs, int(config.batch_size or 64), prepare_batch(data, config), weights, stream)


def input_info(data: Data, feed: Feed) -> dict[str, Any]:
    """How the training windows were read, for metrics.json and the progress line."""
    shards = len(data.train.shards) if isinstance(data.train, ShardedWindows) else 0
    return {"mode": "streamed" if feed.stream else "memory", "split_bytes": data.split.nbytes,
            "in_memory_limit_bytes": IN_MEMORY_BYTES, "train_shards": shards}  # fmt: skip


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
    With TF_CONFIG this process is one worker of a cluster (``harlite.pipeline.cluster``): every worker
    trains, the chief writes the run folder, the others return ``{"worker": rank}``. A run that stopped
    part way (``out/backup``) resumes from its last finished epoch.
    """
    out = Path(out)
    if split is None and data_spec.own:
        check_folders(data_spec, out)
    cluster = current()  # first: TensorFlow forms a cluster only before it runs anything
    chief = cluster.chief
    with folder_lock(out) if chief else contextlib.nullcontext():  # one writer: a second training into out is refused
        for name in RUN_FILES if chief else ():
            check_writable(out / name, force)
        data = prepare_data(load_split(data_spec) if split is None else split)
        config = config.for_data(data.train, data.protocol.n_classes)
        seed_everything(config.seed)
        protocol = data.protocol
        feed = make_feed(data, config, int(config.epochs or 1))
        notes = list(data.split.warnings)
        if chief:
            notes += [n for n in [start_backup(out / BACKUP, {"config": asdict(config), "data": data.split.info()})] if n]

        def make() -> Any:
            return build_model(config.model, n_channels=len(protocol.frontend.channels), window=protocol.window,
                               n_classes=protocol.n_classes, **config.options)  # fmt: skip

        source = input_info(data, feed)
        print(
            f"harlite train: {config.model}, {len(data.train)} training windows ({len(data.train.names)} "
            f"{data.split.kind}s), {len(data.val)} validation, {len(data.test)} test; {config.epochs} epochs of batch "
            f"{config.batch_size}{', class weights' if config.class_weights else ''}; windows "
            f"{'streamed from ' + str(source['train_shards']) + ' shards' if feed.stream else 'in memory'} "
            f"({data.split.nbytes / 2**20:.0f} MB); {cluster.describe}",
            file=sys.stderr,
        )
        for note in notes:
            print(f"harlite train: note: {note}", file=sys.stderr)
        start = time.perf_counter()
        model, history = fit(make, data, feed, config.learning_rate, backup=out / BACKUP,
                             progress=echo_epoch("train", int(config.epochs or 1)))  # fmt: skip
        seconds = time.perf_counter() - start
        if not cluster.chief:
            return {"worker": cluster.rank, "workers": cluster.workers, "train_seconds": seconds}
        test, val = (score_keras(model, data, part) for part in (data.test, data.val))
        metrics = {
            "test": {"float": test},
            "val": {"float": val},
            "model": model_info(model),
            "train_seconds": seconds,
            "config": asdict(config),
            "input": source,
            "cluster": {"workers": cluster.workers, "replicas": cluster.replicas},
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

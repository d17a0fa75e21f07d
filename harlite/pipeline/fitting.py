"""The training loop shared by ``train`` and ``qat``: one Keras ``fit`` over a tf.data feed, on one device or
a cluster, resumable, with validation and scoring that stream.

- The model is built and compiled inside the cluster's strategy scope (``harlite.pipeline.cluster``); the
  batches come from ``harlite.pipeline.feed`` (each worker its own shards).
- ``tf.keras.callbacks.BackupAndRestore`` keeps the last finished epoch in ``backup``; a run started again
  after a crash, a Ctrl-C or a lost worker resumes there (the feed skips the epochs already done), and the
  folder is removed when training ends. ``start_backup`` drops a checkpoint left by a different training.
- Validation after every epoch: each worker scores its own part of the validation windows with a plain copy
  of the model and the sums are added across workers (exact, whatever the shards' sizes; Keras's own
  distributed validation miscounts uneven shards).
- With a ``teacher`` the targets are its probabilities for the same prepared batch (distillation) and the
  training "accuracy" is agreement with the teacher; validation is always against the labels.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.run_folder import ModelInput
from harlite.core.frontend import standardize
from harlite.core.metrics import classification_metrics
from harlite.core.protocol import Protocol
from harlite.data.shards import ShardedWindows
from harlite.data.windows import Split, Windows
from harlite.io.files import read_json, write_json
from harlite.pipeline.cluster import Cluster, all_sum, cluster_errors, current, lost_worker, plain_weights
from harlite.pipeline.feed import Feed, standardized_batches, training_dataset
from harlite.tf import keras, tensorflow

PREDICT_BATCH = 1024
BACKUP_NOTE = "harlite.json"  # in the backup folder: what training the checkpoint belongs to
HISTORY = "history.json"  # in the backup folder: the rows of the epochs done
# on_epoch(epoch, history row, model being trained) -> more fields for the row, or None
OnEpoch = Callable[[int, dict[str, float], Any], "dict[str, float] | None"]


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
    def train(self) -> Windows:
        return self.split.train

    @property
    def val(self) -> Windows:
        return self.split.val

    @property
    def test(self) -> Windows:
        return self.split.test

    def standardized(self, part: Windows) -> np.ndarray:
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


def class_weights(counts: np.ndarray) -> np.ndarray:
    """Per class n / (classes present x windows of the class): every class weighs the same in the loss."""
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    weights = np.zeros(len(counts), np.float32)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def start_backup(backup: Path, identity: dict[str, Any]) -> str | None:
    """Prepare ``backup`` for a training described by ``identity`` (the chief calls this before the cluster
    forms): a checkpoint of another training is dropped. Returns a note for the user, or None."""
    note = None
    if backup.exists():
        try:
            same = read_json(backup / BACKUP_NOTE) == json.loads(json.dumps(identity, default=str))
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(backup)
            note = f"dropped the checkpoint in {backup}: it belongs to another training"
    write_json(backup / BACKUP_NOTE, json.loads(json.dumps(identity, default=str)))
    return note


def fit(
    make_model: Callable[[], Any],
    data: Data,
    feed: Feed,
    learning_rate: float,
    on_epoch: OnEpoch | None = None,
    teacher: Any = None,
    backup: Path | None = None,
    progress: OnEpoch | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """Train the model ``make_model()`` builds on ``data.train`` with a cosine schedule over ``feed.epochs``;
    returns the trained model (a plain one, usable outside the cluster) and the per-epoch history.

    ``on_epoch(epoch, row, model)`` runs after each epoch on every worker, before the epoch's checkpoint; the
    fields it returns join the epoch's history row. ``progress(epoch, row, model)`` runs once the epoch is
    checkpointed (what it reports is safe). With ``backup`` the run checkpoints every epoch there (with
    the history so far) and resumes from it.
    """
    tf, k = tensorflow(), keras()
    cluster = current()
    steps = feed.steps(len(data.train))
    copy = make_model() if cluster.workers > 1 or cluster.replicas > 1 else None  # outside the strategy
    with cluster.strategy.scope():
        model = make_model()
        fitted = _distiller(model, teacher) if teacher is not None else model
        schedule = k.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, feed.epochs * steps))
        loss = "categorical_crossentropy" if teacher is not None else "sparse_categorical_crossentropy"
        fitted.compile(optimizer=k.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])
    start_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def batches(context: Any) -> Any:
        local = context.get_per_replica_batch_size(feed.batch)
        return training_dataset(data.train, feed, local, context.input_pipeline_id, context.num_input_pipelines,
                                start_epoch)  # fmt: skip

    dataset = cluster.strategy.distribute_datasets_from_function(batches)
    history: list[dict[str, float]] = []
    val = _part(data.val, cluster)

    class Epochs(k.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            row = {"epoch": epoch + 1, "loss": logs["loss"],
                   "accuracy" if teacher is None else "teacher_agreement": logs["accuracy"]}  # fmt: skip
            if len(data.val):
                scorer = model
                if copy is not None:
                    copy.set_weights(plain_weights(model))
                    scorer = copy
                right, loss_sum, n = all_sum(cluster, _val_sums(scorer, val, data.mean, data.std))
                row["val_loss"], row["val_accuracy"] = loss_sum / n, right / n
            row["seconds"] = time.perf_counter() - self.started
            row = {key: float(v) for key, v in row.items()}
            row.update((on_epoch(epoch, row, model) if on_epoch is not None else None) or {})
            history.append(row)
            if backup is not None and cluster.chief:
                write_json(backup / HISTORY, history)

    class Progress(k.callbacks.Callback):  # after BackupAndRestore: it restores first, and saves first
        def on_train_begin(self, logs: Any = None) -> None:
            start_epoch.assign(int(fitted.optimizer.iterations.numpy()) // steps)
            done = int(start_epoch.numpy())
            if done:
                print(f"harlite: resuming from the checkpoint in {backup} at epoch {done + 1}", file=sys.stderr)
                history.extend(row for row in _saved_history(backup) if row.get("epoch", 0) <= done)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if progress is not None:
                progress(epoch, history[-1], model)

    callbacks: list[Any] = [Epochs()]
    if backup is not None:  # after Epochs: the checkpoint holds what on_epoch changed in the model
        callbacks.append(k.callbacks.BackupAndRestore(str(backup)))
    callbacks.append(Progress())
    try:
        fitted.fit(dataset, epochs=feed.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=0)
    except cluster_errors() as error:
        if cluster.workers == 1:
            raise
        done = int(start_epoch.numpy()) + len(history)
        raise lost_worker(error, cluster, f"training resumes from epoch {done + 1} (the last checkpoint, in "
                                          f"{backup})" if backup is not None else "training starts again") from None
    if backup is not None and cluster.chief:
        shutil.rmtree(backup, ignore_errors=True)  # finished: nothing to resume
    if copy is None:
        return model, history
    copy.set_weights(plain_weights(model))
    return copy, history


def _saved_history(backup: Path | None) -> list[dict[str, Any]]:
    try:
        rows = read_json(backup / HISTORY) if backup is not None else []
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []


def _distiller(student: Any, teacher: Any) -> Any:
    """A model that trains ``student`` on ``teacher``'s probabilities for the same batch."""
    tf, k = tensorflow(), keras()

    class Distiller(k.Model):
        def __init__(self) -> None:
            super().__init__()
            self.student, self.teacher = student, teacher

        def call(self, inputs: Any, training: Any = None) -> Any:
            return self.student(inputs, training=training)

        def train_step(self, batch: Any) -> dict[str, Any]:
            x, _, weight = batch
            soft = self.teacher(x, training=False)
            with tf.GradientTape() as tape:
                predicted = self.student(x, training=True)
                loss = self.compiled_loss(soft, predicted, weight, regularization_losses=self.student.losses)
            variables = self.student.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            self.compiled_metrics.update_state(soft, predicted, weight)
            return {m.name: m.result() for m in self.metrics}

    return Distiller()


def _part(windows: Windows, cluster: Cluster) -> Windows:
    """This worker's part of ``windows`` (its shards, or every n-th window of a set in memory)."""
    if cluster.workers == 1:
        return windows
    if isinstance(windows, ShardedWindows):
        return ShardedWindows(windows.shards[cluster.rank :: cluster.workers], windows.window, windows.channels)
    keep = np.zeros(len(windows), bool)
    keep[cluster.rank :: cluster.workers] = True
    return windows.take(keep)


def _val_sums(model: Any, windows: Windows, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """[correct, sum of cross-entropy, windows] of ``model`` on ``windows``."""
    right = loss = 0.0
    for probs, y in _probabilities(model, windows, mean, std):
        right += float(np.sum(probs.argmax(-1) == y))
        loss -= float(np.sum(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))
    return np.array([right, loss, len(windows)], np.float64)


_CALL: list[Any] = [None, None]  # the last model called and its traced call


def _probabilities(model: Any, windows: Windows, mean: np.ndarray, std: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(probabilities, true class) per batch; the model is called directly (not ``predict``), so this works
    inside a distribution strategy's scope too (Keras callbacks run there)."""
    if _CALL[0] is not model:
        _CALL[:] = [model, tensorflow().function(lambda X: model(X, training=False), reduce_retracing=True)]
    call = _CALL[1]
    for X, y in standardized_batches(windows, mean, std, PREDICT_BATCH):
        yield np.asarray(call(X)), y


def keras_predict(model: Any, X_std: np.ndarray) -> np.ndarray:
    """Class probabilities of a Keras model for standardized windows."""
    return model.predict(X_std, batch_size=256, verbose=0)


def predict_classes(model: Any, windows: Windows, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) classes of a Keras model on ``windows``, read a shard at a time."""
    parts = [(y, probs.argmax(-1)) for probs, y in _probabilities(model, windows, mean, std)]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def score_keras(model: Any, data: Data, part: Windows) -> dict[str, Any] | None:
    """classification_metrics of a Keras model on a part of ``data`` (None for an empty part)."""
    if not len(part):
        return None
    y, predicted = predict_classes(model, part, data.mean, data.std)
    return classification_metrics(y, predicted, data.protocol.labels)


def echo_epoch(prefix: str, epochs: int) -> OnEpoch:
    """A progress line on stderr per epoch."""

    def echo(epoch: int, row: dict[str, float], model: Any = None) -> None:
        fit_ = f"acc {row['accuracy']:.4f}" if "accuracy" in row else f"agreement {row['teacher_agreement']:.4f}"
        val = f" val_acc {row['val_accuracy']:.4f}" if "val_accuracy" in row else ""
        val += f" int8 val_acc {row['int8_val_accuracy']:.4f}" if "int8_val_accuracy" in row else ""
        print(f"{prefix} epoch {epoch + 1}/{epochs}: loss {row['loss']:.4f} {fit_}{val} ({row['seconds']:.1f} s)",
              file=sys.stderr)  # fmt: skip

    return echo


"""Training input as one tf.data pipeline: windows from memory or streamed from the window store, shuffled,
prepared per batch (augmentation, standardization, noise), with each window's class weight.

Epoch ``e`` on worker ``k`` of ``W`` (one worker: ``k = 0, W = 1``):

- in memory (a small split): a full shuffle of the windows, stateless from ``(seed, e)``; worker k takes
  every W-th window;
- streamed (``harlite.data.shards``): the shards in an order shuffled from ``(seed, e)``, worker k reading
  every W-th shard (each worker reads only its own shards); ``INTERLEAVE`` shards read at a time, one window
  from each in turn (``FixedLengthRecordDataset`` on the .npy files: buffered reads, nothing mapped), through
  a shuffle buffer of at most ``SHUFFLE_BUFFER`` windows (and at most half the worker's share). Memory is
  the buffer and the read buffers, whatever the amount of data.

Then batches of the worker's batch size; each batch goes through ``prepare(X, seed)`` (physical windows in,
standardized model input out, ``seed = (seed, e, k, batch)``: the augmentation hook, see
``harlite.pipeline.train.prepare_batch``). With several workers every worker gives the same number of
batches per epoch (its windows cycled or cut to ``steps x batch``), as synchronous training needs.

All epochs form one dataset, ``range(epochs).filter(e >= start_epoch).flat_map(epoch)``, fed to a single
``fit``: everything about epoch e follows from ``(seed, e)``, so a run resumed at epoch e (``start_epoch``
set from the restored optimizer step) sees the batches the uninterrupted run saw. Operations are
deterministic (``enable_op_determinism``, deterministic interleave and maps): same seed, same batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from harlite.core.frontend import standardize
from harlite.data.shards import ShardedWindows
from harlite.data.windows import Windows
from harlite.tf import tensorflow

INTERLEAVE = 16  # shards read at a time
SHUFFLE_BUFFER = 4096  # windows (19 MB at 128 x 9 float32)
READ_BUFFER = 1 << 18  # bytes buffered per open shard
# prepare(X physical (b, window, channels) float32, seed (4,) int64) -> X standardized (b, window, channels) float32
Prepare = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Feed:
    """What decides the batches: the seed, epochs, global batch size, per-batch preparation, the weight of
    each class, and whether windows stream from the store."""

    seed: int
    epochs: int
    batch: int
    prepare: Prepare
    weights: np.ndarray
    stream: bool

    def steps(self, windows: int) -> int:
        """Optimizer steps per epoch."""
        return max(1, math.ceil(windows / self.batch))


def training_dataset(windows: Windows, feed: Feed, local_batch: int, worker: int = 0, workers: int = 1,
                     start_epoch: Any = None) -> Any:  # fmt: skip
    """The tf.data dataset of (X, y, weight) batches of every epoch for worker ``worker`` of ``workers``
    (see the module docstring); ``start_epoch`` is an int64 tf.Variable (epochs before it are skipped)."""
    tf = tensorflow()
    steps = feed.steps(len(windows))
    weights = tf.constant(feed.weights, tf.float32)
    if feed.stream:
        epoch = _streamed_epoch(windows, feed, local_batch, worker, workers, steps)
    else:
        epoch = _in_memory_epoch(windows, feed, local_batch, worker, workers, steps)
    seed = feed.seed & 0x7FFFFFFF

    def prepared(e: Any) -> Any:
        def step(i: Any, batch: Any) -> Any:
            X, y = batch
            key = tf.stack([tf.constant(seed, tf.int64), e, tf.constant(worker, tf.int64), i])
            X = tf.numpy_function(feed.prepare, [X, key], tf.float32, stateful=False)
            X.set_shape([None, *windows_shape(windows)])
            return X, y, tf.gather(weights, y)

        return epoch(e).enumerate().map(step, num_parallel_calls=2, deterministic=True)

    epochs = tf.data.Dataset.range(feed.epochs)
    if start_epoch is not None:
        epochs = epochs.filter(lambda e: e >= start_epoch.read_value())
    return epochs.flat_map(prepared).prefetch(2)


def windows_shape(windows: Windows) -> tuple[int, int]:
    if isinstance(windows, ShardedWindows):
        return windows.window, windows.channels
    return tuple(windows.X.shape[1:])


def _in_memory_epoch(windows: Windows, feed: Feed, local_batch: int, worker: int, workers: int, steps: int) -> Any:
    tf = tensorflow()
    X, y = tf.constant(windows.X), tf.constant(np.asarray(windows.y, np.int32))
    n = len(windows)

    def epoch(e: Any) -> Any:
        key = tf.stack([tf.constant(feed.seed & 0x7FFFFFFF, tf.int64), e])
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key)[worker::workers]
        ds = tf.data.Dataset.from_tensor_slices(order)
        if workers > 1:
            ds = ds.repeat().take(steps * local_batch)
        return ds.batch(local_batch).map(lambda i: (tf.gather(X, i), tf.gather(y, i)))

    return epoch


def _streamed_epoch(windows: ShardedWindows, feed: Feed, local_batch: int, worker: int, workers: int,
                    steps: int) -> Any:  # fmt: skip
    tf = tensorflow()
    shards = windows.shards
    record = windows.window * windows.channels * 4
    x_paths = tf.constant([str(s.path("x")) for s in shards])
    y_paths = tf.constant([str(s.path("y")) for s in shards])
    offsets = tf.constant([s.offsets for s in shards], tf.int64)
    width = max(len(s.table) for s in shards)
    tables = tf.constant([list(s.table) + [0] * (width - len(s.table)) for s in shards], tf.int32)
    buffer = max(1, min(SHUFFLE_BUFFER, len(windows) // workers // 2))
    shape = [windows.window, windows.channels]

    def read(i: Any) -> Any:
        x = tf.data.FixedLengthRecordDataset(x_paths[i], record, header_bytes=offsets[i][0], buffer_size=READ_BUFFER)
        y = tf.data.FixedLengthRecordDataset(y_paths[i], 2, header_bytes=offsets[i][1], buffer_size=1 << 14)
        table = tables[i]
        return tf.data.Dataset.zip((x, y)).map(
            lambda xb, yb: (tf.reshape(tf.io.decode_raw(xb, tf.float32), shape),
                            tf.gather(table, tf.cast(tf.io.decode_raw(yb, tf.int16)[0], tf.int32))))  # fmt: skip

    def epoch(e: Any) -> Any:
        key = tf.stack([tf.constant(feed.seed & 0x7FFFFFFF, tf.int64), e])
        order = tf.random.experimental.stateless_shuffle(tf.range(len(shards), dtype=tf.int64), seed=key)[worker::workers]
        ds = tf.data.Dataset.from_tensor_slices(order).interleave(
            read, cycle_length=INTERLEAVE, block_length=1, num_parallel_calls=2, deterministic=True)
        if workers > 1:
            ds = ds.repeat()
        # A Python-int seed: the buffer's choices repeat each epoch, the order of what enters it does not.
        ds = ds.shuffle(buffer, seed=(feed.seed & 0x7FFFFFFF) * 7919 + worker + 1, reshuffle_each_iteration=False)
        if workers > 1:
            ds = ds.take(steps * local_batch)
        return ds.batch(local_batch)

    return epoch


def standardized_batches(windows: Windows, mean: np.ndarray, std: np.ndarray,
                         size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """(standardized X, y) of ``windows`` in order, at most ``size`` at a time (one shard in memory)."""
    for X, y in windows.batches(size):
        yield standardize(X, mean, std), y

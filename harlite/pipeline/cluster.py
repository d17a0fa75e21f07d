"""Training on several workers (or GPUs) with TensorFlow's own tf.distribute.

``current()`` is this process's place: with ``TF_CONFIG`` (TensorFlow's documented variable, set by
``--workers``, by a Kubernetes TFJob or by hand) a ``MultiWorkerMirroredStrategy`` over the cluster; on a
machine with several GPUs a ``MirroredStrategy``; otherwise TensorFlow's default strategy (one device).
Training is synchronous data parallelism: every worker holds the whole model, computes gradients on its own
batches (its own shards, ``harlite.pipeline.feed``), and the gradients are summed across workers at every
step. The chief (TF_CONFIG's ``chief`` task, else worker 0) writes the outputs; the others write nothing.

What happens when things go wrong (measured with two workers on loopback, docs/scale.md):

- a worker killed: the others fail within seconds with an ``UnavailableError`` from TensorFlow's
  coordination service; a worker that hangs: the same after about 23 s (missed heartbeats).
  ``lost_worker`` turns it into one line (``WorkerLost``) that says how to resume;
- a cluster that never forms (a worker not started, a wrong address): TensorFlow would wait for ever (and
  holds the interpreter while it waits, so no Python watchdog can act), so harlite configures TensorFlow's
  coordination service itself, with registration behind a barrier that times out after
  ``HARLITE_JOIN_TIMEOUT`` seconds (default 600): every worker then ends with one line;
- reading batch norm's moving statistics (``get_weights``) is itself a collective under this strategy:
  every worker calls ``plain_weights`` at the same points, and the chief's own work uses a plain copy.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from harlite.errors import HarliteError
from harlite.tf import tensorflow

JOIN_TIMEOUT = 600.0


class WorkerLost(HarliteError):
    """A worker of the cluster died or stopped answering during training."""


@dataclass(frozen=True)
class Cluster:
    """The strategy and this process's place in it: ``workers`` processes, this one ``rank`` (0: the chief),
    ``replicas`` devices in sync over all workers."""

    strategy: Any
    workers: int = 1
    rank: int = 0
    replicas: int = 1
    addresses: tuple[str, ...] = ()

    @property
    def chief(self) -> bool:
        return self.rank == 0

    @property
    def describe(self) -> str:
        if self.workers > 1:
            return f"{self.workers} workers ({self.replicas} replicas), this one #{self.rank}"
        return f"{self.replicas} GPUs" if self.replicas > 1 else "one device"


_CURRENT: list[Cluster] = []


def current() -> Cluster:
    """This process's cluster (made once: TensorFlow configures collectives once per process)."""
    if not _CURRENT:
        _CURRENT.append(_make())
    return _CURRENT[0]


def _make() -> Cluster:
    tf = tensorflow()
    raw = os.environ.get("TF_CONFIG", "").strip()
    if raw:
        tasks, rank = parse_tf_config(raw)
        if len(tasks) > 1:
            timeout = float(os.environ.get("HARLITE_JOIN_TIMEOUT", JOIN_TIMEOUT))
            _coordinate(json.loads(raw)["cluster"], timeout)
            try:
                strategy = tf.distribute.MultiWorkerMirroredStrategy()
            except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError):
                raise HarliteError(f"the cluster did not form within {timeout:g} s ({len(tasks)} workers: "
                                   f"{', '.join(tasks)}); start every worker (the same command, each with its own "
                                   "TF_CONFIG task) and check the addresses and ports.") from None  # fmt: skip
            return Cluster(strategy, len(tasks), rank, strategy.num_replicas_in_sync, tuple(tasks))
    if len(tf.config.list_physical_devices("GPU")) > 1:
        strategy = tf.distribute.MirroredStrategy()
        return Cluster(strategy, replicas=strategy.num_replicas_in_sync)
    return Cluster(tf.distribute.get_strategy())


def parse_tf_config(raw: str) -> tuple[list[str], int]:
    """The cluster's addresses (chief first, then the workers) and this task's rank in that list."""
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
        tasks = chiefs + workers
        rank = index if kind == "chief" else len(chiefs) + index
        if kind not in ("chief", "worker") or not 0 <= rank < len(tasks) or len(chiefs) > 1:
            raise ValueError(f"task {kind} {index} is not in the cluster")
        wrong = [a for a in tasks if not isinstance(a, str) or not a.rpartition(":")[0] or not a.rpartition(":")[2].isdigit()]
        if wrong:
            raise ValueError(f"{wrong[0]!r} is no host:port address")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise HarliteError(f"TF_CONFIG is not a cluster harlite can join ({e}); it must be like "
                           '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
                           '"index": 0}} (docs/scale.md).') from None  # fmt: skip
    return tasks, rank


def _coordinate(cluster: dict[str, list[str]], timeout: float) -> None:
    """Configure TensorFlow's coordination service as MultiWorkerMirroredStrategy would, but with every task's
    registration behind a barrier that fails after ``timeout`` seconds instead of waiting for ever."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    jobs = [job for job in ("chief", "worker") if cluster.get(job)]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{jobs[0]}/replica:0/task:0",
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job])) for job in jobs],
        cluster_register_timeout_in_ms=int(timeout * 1000))  # fmt: skip
    config = getattr(context.context(), "_coordination_service_config", None)
    if config is not None and hasattr(config, "cluster_register_with_barrier"):
        config.cluster_register_with_barrier = True


def all_sum(cluster: Cluster, values: np.ndarray) -> np.ndarray:
    """The sum over workers of each worker's ``values`` (float64); every worker must call it."""
    values = np.asarray(values, np.float64)
    if cluster.workers == 1:
        return values
    tf = tensorflow()
    strategy = cluster.strategy
    per_worker = strategy.num_replicas_in_sync // cluster.workers
    zero = tf.zeros_like(values)

    def value(context: Any) -> Any:
        return tf.constant(values) if context.replica_id_in_sync_group % per_worker == 0 else zero

    return strategy.reduce("SUM", strategy.experimental_distribute_values_from_function(value), axis=None).numpy()


def outside_strategy(function: Any, *args: Any) -> Any:
    """``function(*args)`` run where no distribution strategy is in scope (Keras runs callbacks inside the
    strategy's scope, which is per thread): models it builds are plain ones."""
    result: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(function(*args))
        except BaseException as error:  # noqa: BLE001  (raised again in the caller's thread)
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def plain_weights(model: Any) -> list[np.ndarray]:
    """The model's weights as arrays (under a multi-worker strategy a collective: every worker calls it)."""
    return [np.asarray(w) for w in model.get_weights()]


def cluster_errors() -> tuple[type, ...]:
    """The TensorFlow errors a lost worker raises in the others."""
    errors = tensorflow().errors
    return errors.UnavailableError, errors.DeadlineExceededError, errors.AbortedError, errors.CancelledError


def lost_worker(error: Exception, cluster: Cluster, resume: str) -> WorkerLost:
    """One line for a training that lost a worker: what TensorFlow said (first line) and how to resume."""
    said = " ".join(str(getattr(error, "message", error)).split())
    for noise in ("Graph execution error:", "Collective ops is aborted by:"):
        said = said.replace(noise, "")
    return WorkerLost(f"worker #{cluster.rank} lost the cluster ({said.strip()[:160]}); a worker died or stopped "
                      f"answering: start every worker again with the same command, {resume}.")  # fmt: skip

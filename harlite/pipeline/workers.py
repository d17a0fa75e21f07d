"""Local workers: ``--workers N`` trains with N processes on this machine that form a TensorFlow cluster over
loopback, the way a cluster of N machines does (docs/scale.md), and supervises them.

``launch(task, n, logs, resume)`` picks N free loopback ports, starts ``python -m harlite.pipeline.workers
TASK`` N times, each with its own ``TF_CONFIG`` (worker 0 is the chief), and waits. Every worker writes
``logs/worker<i>.log``; the chief's progress is copied to the terminal. When a worker fails, the others are
stopped with SIGKILL (TensorFlow's workers catch SIGTERM to note a preemption and keep waiting) and
``WorkersFailed`` says in one line which worker, how it ended (a worker killed by a signal is named before
the others it took down) and how to resume. ``TASK`` is JSON naming a stage (``train`` or ``qat``) and its
arguments; the same JSON runs on every worker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harlite.errors import HarliteError

LOGS = "workers"  # in the run folder: worker<i>.log of the last --workers run
POLL_SECONDS = 0.2
GRACE_SECONDS = 2.0  # after a failure, how long to look for the worker whose death caused it
ERROR_PREFIX = "harlite worker error: "  # how a worker prints its failure (the supervisor reports it)


class WorkersFailed(HarliteError):
    """A local worker process failed; the others were stopped."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound and released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: list[str], index: int) -> str:
    """TF_CONFIG of worker ``index`` in a cluster of ``addresses`` (TensorFlow's documented format)."""
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def check_local(n: int) -> None:
    """``--workers n`` makes a cluster of its own: n must be 2 or more, and TF_CONFIG unset."""
    if os.environ.get("TF_CONFIG", "").strip():
        raise HarliteError("--workers starts a cluster of its own, but TF_CONFIG is set: unset it, or run without "
                           "--workers to be one worker of the cluster TF_CONFIG describes.")  # fmt: skip
    if n < 2:
        raise HarliteError(f"--workers {n}: give 2 or more worker processes (or leave it out for one).")


def train_on_workers(out: str | Path, config: Any, workers: int, force: bool = False, data_spec: Any = None) -> dict:
    """``harlite.pipeline.train.train`` on ``workers`` local processes; returns the metrics the chief wrote."""
    from dataclasses import asdict

    from harlite.data.windows import DataSpec, load_split
    from harlite.io.files import check_writable, read_json
    from harlite.pipeline.train import RUN_FILES

    check_local(workers)
    out, data_spec = Path(out), data_spec or DataSpec()
    for name in RUN_FILES:
        check_writable(out / name, force)
    load_split(data_spec)  # window the data once, here, before the workers read it
    task = {"stage": "train", "out": str(out), "config": asdict(config), "data": data_spec.to_dict(), "force": force}
    launch(task, workers, out / LOGS, "training resumes from its last finished epoch")
    return read_json(out / "metrics.json")


def qat_on_workers(run_dir: str | Path, workers: int, force: bool = False, **options: Any) -> dict:
    """``harlite.pipeline.qat.qat`` on ``workers`` local processes; returns the metrics the chief wrote."""
    from harlite.io.files import check_writable, read_json
    from harlite.pipeline.qat import QAT_FILES

    check_local(workers)
    out = Path(run_dir) / "qat"
    for name in QAT_FILES:
        check_writable(out / name, force)
    task = {"stage": "qat", "run_dir": str(run_dir), "options": {**options, "force": force}}
    launch(task, workers, Path(run_dir) / LOGS, "QAT resumes from its last finished epoch")
    return read_json(out / "metrics.json")


def launch(task: dict[str, Any], n: int, logs: Path, resume: str) -> None:
    """Run ``task`` on ``n`` local workers until all finish; ``WorkersFailed`` when one does not."""
    check_local(n)
    logs.mkdir(parents=True, exist_ok=True)
    addresses = [f"127.0.0.1:{port}" for port in free_ports(n)]
    payload = json.dumps(task)
    procs = []
    for i in range(n):
        env = {**os.environ, "TF_CONFIG": tf_config(addresses, i)}
        with open(logs / f"worker{i}.log", "wb") as log:  # the child keeps its own descriptor
            procs.append(subprocess.Popen([sys.executable, "-m", "harlite.pipeline.workers", payload], env=env,
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
    relay = _Relay(logs / "worker0.log")
    try:
        failed = _wait(procs, relay)
    except BaseException:
        _stop(procs)
        raise
    relay.copy()
    if failed is not None:
        i, code = failed
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        said = _error_line(logs / f"worker{i}.log")
        raise WorkersFailed(f"worker {i} of {n} ({addresses[i]}) {how}{': ' + said if said else ''}; the others were "
                            f"stopped. Run the same command again: {resume} (worker logs: {logs}).")  # fmt: skip


class _Relay:
    """Copies the chief's log to stderr as it grows, holding back its final error line."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def copy(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        for line in chunk[:end].decode(errors="replace").splitlines(keepends=True):
            if not line.startswith(ERROR_PREFIX):
                sys.stderr.write(line)
        sys.stderr.flush()


def _wait(procs: list[subprocess.Popen], relay: _Relay) -> tuple[int, int] | None:
    """Wait for every process; the (index, status) of the worker that failed first (one killed by a signal
    before one that only lost its peers), or None. The others are stopped."""
    while True:
        relay.copy()
        codes = [p.poll() for p in procs]
        if all(c == 0 for c in codes):
            return None
        if any(c not in (None, 0) for c in codes):
            deadline = time.monotonic() + GRACE_SECONDS  # a peer's own status is more telling than the error it caused
            while time.monotonic() < deadline and not any(p.poll() is not None and p.returncode < 0 for p in procs):
                time.sleep(POLL_SECONDS)
            codes = [p.poll() for p in procs]
            _stop(procs)
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            return min(failed, key=lambda f: (f[1] >= 0, f[0]))
        time.sleep(POLL_SECONDS)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


def _error_line(path: Path) -> str:
    """The one-line error a worker printed before it stopped, if any."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.startswith(ERROR_PREFIX)]
    except OSError:
        return ""
    return lines[-1][len(ERROR_PREFIX) :].strip()[:300] if lines else ""


def run_task(task: dict[str, Any]) -> Any:
    """Run one stage as this process's part of the cluster (TF_CONFIG is set)."""
    from harlite.data.windows import DataSpec
    from harlite.pipeline.qat import qat
    from harlite.pipeline.train import TrainConfig, train

    if task["stage"] == "train":
        config = TrainConfig(**{**task["config"], "options": dict(task["config"].get("options") or {})})
        return train(task["out"], config, force=task.get("force", False), data_spec=DataSpec.from_dict(task["data"]))
    if task["stage"] == "qat":
        return qat(task["run_dir"], **task.get("options", {}))
    raise HarliteError(f"unknown stage {task['stage']!r}")


def main(argv: list[str]) -> int:
    """A worker process: run the task, print a failure as one line on stderr (exit 2, or 1 for a bug)."""
    try:
        run_task(json.loads(argv[0]))
    except HarliteError as error:
        print(f"{ERROR_PREFIX}{error}", file=sys.stderr, flush=True)
        return 2
    except Exception as error:  # noqa: BLE001  (one line; the cause in the worker's log when verbose)
        if os.environ.get("HARLITE_VERBOSE"):
            raise
        print(f"{ERROR_PREFIX}internal error ({type(error).__name__}: {' '.join(str(error).split())[:200]}); rerun "
              "with --verbose for the traceback", file=sys.stderr, flush=True)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

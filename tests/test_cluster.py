"""Training on a TensorFlow cluster: two local worker processes on loopback (TF_CONFIG, MultiWorkerMirrored-
Strategy) match one worker; a killed worker ends the run with one line and the rerun resumes from the last
finished epoch; a cluster that never forms ends with one line; TF_CONFIG is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harlite.data.hapt import export_hapt
from harlite.data.windows import DataSpec
from harlite.errors import HarliteError
from harlite.pipeline.cluster import parse_tf_config
from harlite.pipeline.workers import tf_config

SUBJECTS = ("1", "2", "3", "4", "5", "6")
EPOCHS = 3
# Two workers see other batches than one (each half of every batch, batch norm per worker): after the same
# epochs their test accuracy differs by a few points at most on this data (measured: docs/scale.md).
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(tmp_path_factory.mktemp("hapt-cache")))
        export_hapt(SUBJECTS, root, as_dataset=True)
    return root


def _command(folder: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "harlite", "train", "--data", str(folder), "--test-subjects", "2",
            "--val-subjects", "1", "--epochs", str(EPOCHS), "--batch-size", "32", "--workers", "2", "--out", str(out)]


def _child_with_index(parent: int, index: int) -> int:
    """The pid of ``parent``'s child process whose TF_CONFIG names worker ``index``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        config = [e[len(b"TF_CONFIG="):] for e in env if e.startswith(b"TF_CONFIG=")]
        if ppid == parent and config and json.loads(config[0])["task"]["index"] == index:
            return int(pid)
    raise AssertionError(f"no worker {index} under {parent}")


def test_two_workers_match_one_and_a_killed_worker_resumes(folder, tmp_path, monkeypatch) -> None:
    from harlite.pipeline.train import TrainConfig, train

    cache = tmp_path / "cache"
    monkeypatch.setenv("HARLITE_CACHE", str(cache))
    one = train(tmp_path / "one", TrainConfig(epochs=EPOCHS, batch_size=32),
                data_spec=DataSpec(data=str(folder), test_subjects=("2",), val_subjects=1))["test"]["float"]
    env = {**os.environ, "HARLITE_CACHE": str(cache)}
    env.pop("TF_CONFIG", None)
    out = tmp_path / "two"
    run = subprocess.Popen(_command(folder, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "workers" / "worker0.log"
    deadline = time.monotonic() + 600
    while not (log.exists() and f"epoch 1/{EPOCHS}" in log.read_text()):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.5)
    os.kill(_child_with_index(run.pid, 1), 9)
    stdout, stderr = run.communicate(timeout=300)
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert run.returncode == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr
    assert "worker 1 of 2" in errors[0] and "SIGKILL" in errors[0] and "resumes from its last finished epoch" in errors[0]
    assert (out / "backup").is_dir() and not (out / "model.keras").exists()

    again = subprocess.run(_command(folder, out), env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert "resuming from the checkpoint" in again.stderr and "at epoch 2" in again.stderr
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))  # the first epoch's row was kept
    two = json.loads((out / "metrics.json").read_text())
    assert two["cluster"]["workers"] == 2 and not (out / "backup").exists()
    assert abs(two["test"]["float"]["accuracy"] - one["accuracy"]) <= TOLERANCE, (two["test"]["float"], one)


def test_a_cluster_that_never_forms_ends_with_one_line(folder, tmp_path) -> None:
    addresses = ["127.0.0.1:1", "127.0.0.1:2"]  # worker 1 is never started
    env = {**os.environ, "HARLITE_CACHE": str(tmp_path / "cache"), "HARLITE_JOIN_TIMEOUT": "3",
           "TF_CONFIG": tf_config(addresses, 0)}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "harlite", "train", "--data", str(folder), "--test-subjects", "2",
                           "--epochs", "1", "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "did not form within 3 s" in lines[0] and "127.0.0.1:2" in lines[0]


def test_tf_config_is_read_as_tensorflow_documents_it() -> None:
    assert parse_tf_config(tf_config(["a:1", "b:2", "c:3"], 2)) == (["a:1", "b:2", "c:3"], 2)
    chief = {"cluster": {"chief": ["c:0"], "worker": ["w:1", "w:2"]}, "task": {"type": "worker", "index": 0}}
    assert parse_tf_config(json.dumps(chief)) == (["c:0", "w:1", "w:2"], 1)
    for bad in ("{", '{"cluster": {}}', json.dumps({**chief, "task": {"type": "worker", "index": 5}}),
                json.dumps({**chief, "task": {"type": "ps", "index": 0}}),
                json.dumps({**chief, "cluster": {"worker": ["w:1", "w2"]}})):  # fmt: skip
        with pytest.raises(HarliteError, match="TF_CONFIG is not a cluster harlite can join"):
            parse_tf_config(bad)


def test_a_bad_tf_config_or_a_clash_with_workers_is_one_line(folder, tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from harlite.cli import main
    from harlite.pipeline import cluster

    monkeypatch.setattr(cluster, "_CURRENT", [])  # this process's cluster is made once: as a fresh process would
    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path / "cache"))
    train = ["train", "--data", str(folder), "--epochs", "1", "--out", str(tmp_path / "run")]
    for config, args, message in (
        ('{"cluster": {"worker": ["127.0.0.1:1", "localhost"]}, "task": {"type": "worker", "index": 0}}', [],
         "'localhost' is no host:port address"),
        (tf_config(["127.0.0.1:1", "127.0.0.1:2"], 0), ["--workers", "2"], "--workers starts a cluster of its own"),
    ):  # fmt: skip
        monkeypatch.setenv("TF_CONFIG", config)
        result = CliRunner().invoke(main, train + args)
        if args:
            build = CliRunner().invoke(main, ["build", *train[1:], *args])
            assert build.exit_code == 2 and build.output.count("\n") == 1 and message in build.output, build.output
        errors = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(errors) == 1 and message in errors[0], result.output
    assert not (tmp_path / "run" / "model.keras").exists()

"""harlite.pipeline.stages: a stage is kept only when its key (inputs, params, code) and its outputs are unchanged;
one writer per folder, enforced with a real lock between real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harlite.core.frontend
from harlite.data import hapt, uci_har
from harlite.errors import HarliteError
from harlite.io.locks import folder_lock
from harlite.pipeline.stages import RunFolder, code_identity

REPO = Path(__file__).resolve().parents[1]


class Pipeline:
    """Three stages as harlite build chains them: data (reads an input file) -> model -> bundle (a folder)."""

    def __init__(self, root: Path) -> None:
        self.root, self.calls, self.runs = root, [], 0
        self.source = root.parent / "recordings.csv"
        self.source.write_text("time_s,acc_x\n0,1\n")
        self.params = {"seed": 0}

    def _data(self) -> dict[str, int]:
        self.calls.append("data")
        (self.root / "data.txt").write_text(self.source.read_text().upper())
        return {"rows": 1}

    def _model(self) -> dict[str, int]:
        self.calls.append("model")
        (self.root / "model.bin").write_bytes(f"model of run {self.runs}".encode())  # not deterministic
        return {"run": self.runs}

    def _bundle(self) -> dict[str, str]:
        self.calls.append("bundle")
        (self.root / "bundle" / "tflm").mkdir(parents=True, exist_ok=True)
        (self.root / "bundle" / "model_int8.tflite").write_bytes((self.root / "model.bin").read_bytes() * 2)
        (self.root / "bundle" / "tflm" / "harlite_model_data.cpp").write_text("0x01, 0x02")
        return {"bundle": "bundle"}

    def run(self, code: dict | None = None, fail_at: str | None = None) -> list[str]:
        """One build; returns the stages it ran."""
        self.runs, before = self.runs + 1, len(self.calls)
        with RunFolder(self.root, total=3, code=code) as folder:
            folder.stage("data", {}, ["data.txt"], self._data, inputs=[self.source])
            folder.stage("model", self.params, ["model.bin"], self._model if fail_at != "model" else _boom)
            folder.stage("bundle", self.params, ["bundle"], self._bundle if fail_at != "bundle" else _boom)
        return self.calls[before:]


def _boom() -> None:
    raise RuntimeError("interrupted")


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    (tmp_path / "run").mkdir()
    return Pipeline(tmp_path / "run")


def test_an_unchanged_run_keeps_every_stage(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    assert pipeline.run() == ["data", "model", "bundle"]
    capsys.readouterr()
    assert pipeline.run() == []
    err = capsys.readouterr().err
    assert err.count("unchanged, kept") == 3 and "[3/3] bundle: unchanged, kept" in err


def test_a_flipped_output_byte_redoes_that_stage_and_every_later_one(pipeline: Pipeline,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    pipeline.run()
    model = pipeline.root / "model.bin"
    data = bytearray(model.read_bytes())
    data[0] ^= 0x01
    model.write_bytes(bytes(data))
    capsys.readouterr()
    assert pipeline.run() == ["model", "bundle"]
    err = capsys.readouterr().err
    assert "[2/3] model... (model.bin was altered)" in err and "[3/3] bundle... (model was redone)" in err


def test_a_flipped_byte_inside_an_output_folder_redoes_the_stage(pipeline: Pipeline) -> None:
    pipeline.run()
    tflite = pipeline.root / "bundle" / "model_int8.tflite"
    tflite.write_bytes(tflite.read_bytes()[:-1] + b"X")
    assert pipeline.run() == ["bundle"]
    (pipeline.root / "bundle" / "tflm" / "harlite_model_data.cpp").unlink()  # the finding: a deleted C array
    assert pipeline.run() == ["bundle"]
    (pipeline.root / "bundle" / "extra.txt").write_text("left behind")  # a new file changes the folder too
    assert pipeline.run() == ["bundle"]
    with folder_lock(pipeline.root / "bundle"):  # a writer's lock file is not part of the output
        pass
    assert pipeline.run() == []


def test_a_deleted_output_redoes_that_stage_and_every_later_one(pipeline: Pipeline,
                                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    pipeline.run()
    (pipeline.root / "data.txt").unlink()
    capsys.readouterr()
    assert pipeline.run() == ["data", "model", "bundle"]
    assert "[1/3] data... (data.txt is missing)" in capsys.readouterr().err


def test_a_changed_input_file_redoes_everything_from_its_stage(pipeline: Pipeline,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    pipeline.run()
    pipeline.source.write_text("time_s,acc_x\n0,2\n")  # same size, new content
    capsys.readouterr()
    assert pipeline.run() == ["data", "model", "bundle"]
    assert "[1/3] data... (inputs changed)" in capsys.readouterr().err


def test_changed_code_identity_redoes_the_stages(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    pipeline.run()
    identity = code_identity()
    assert identity["frontend"] == harlite.core.frontend.IMPLEMENTATION and identity["harlite"] == harlite.__version__
    assert (
        identity["parsers"]["hapt"] == hapt.PARSER_VERSION and identity["parsers"]["uci_har"] == uci_har.PARSER_VERSION
    )
    monkeypatch.setattr(
        harlite.core.frontend, "IMPLEMENTATION", harlite.core.frontend.IMPLEMENTATION + 1
    )  # a new front end
    capsys.readouterr()
    assert pipeline.run() == ["data", "model", "bundle"]
    assert "[1/3] data... (code changed)" in capsys.readouterr().err
    monkeypatch.setattr("harlite.__version__", "9.9.9")  # a new harlite
    assert pipeline.run() == ["data", "model", "bundle"]
    monkeypatch.setattr(uci_har, "PARSER_VERSION", uci_har.PARSER_VERSION + 1)  # a changed parser
    assert pipeline.run() == ["data", "model", "bundle"]
    assert pipeline.run() == []
    assert pipeline.run(code={"custom": 1}) == ["data", "model", "bundle"]  # the lead's own identity


def test_changed_params_redo_that_stage_and_later_ones(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline.run()
    pipeline.params = {"seed": 1}
    capsys.readouterr()
    assert pipeline.run() == ["model", "bundle"]
    assert "[2/3] model... (params changed)" in capsys.readouterr().err


def test_an_interrupted_redo_never_leaves_a_later_stage_on_stale_inputs(pipeline: Pipeline) -> None:
    """model is redone (new bytes) and the run dies in bundle: the next run must redo bundle, although
    bundle's own record, params and outputs are untouched."""
    pipeline.run()
    (pipeline.root / "model.bin").write_bytes(b"damaged")
    with pytest.raises(RuntimeError, match="interrupted"):
        pipeline.run(fail_at="bundle")
    assert pipeline.run() == ["bundle"]


def test_a_broken_record_redoes_the_stage_and_a_missing_output_is_an_error(pipeline: Pipeline) -> None:
    pipeline.run()
    (pipeline.root / ".stages" / "model.json").write_text("{not json")
    assert pipeline.run() == ["model", "bundle"]
    with RunFolder(pipeline.root, total=1) as folder, pytest.raises(HarliteError, match="did not write never.txt"):
        folder.stage("lazy", {}, ["never.txt"], lambda: None)


HOLDER = """
import sys, time
from harlite.io.locks import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def _hold(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_is_refused_until_the_first_exits(tmp_path: Path) -> None:
    out = tmp_path / "simulate"
    holder = _hold(out)
    try:
        start = time.perf_counter()
        with pytest.raises(
            HarliteError, match=rf"{out} is being written by another harlite process \(pid {holder.pid}"
        ):
            RunFolder(out, total=1)
        with pytest.raises(HarliteError, match=r"wait for it to finish, or write to another folder \(--out\)"):
            with folder_lock(out):
                pass
        assert time.perf_counter() - start < 5  # refused at once, not after waiting
    finally:
        holder.send_signal(signal.SIGKILL)  # however the holder dies, the kernel releases the lock
        holder.wait()
    with folder_lock(out) as locked:
        assert locked == out
        with folder_lock(out):  # reentrant within one process
            pass
        with RunFolder(out, total=1) as folder:  # a RunFolder inside the same process's lock
            folder.stage("s", {}, [], lambda: 1)
    holder = _hold(out)  # released on exit: another process can take it again
    holder.send_signal(signal.SIGTERM)
    holder.wait()


def test_a_runfolder_left_open_is_released_when_collected(tmp_path: Path) -> None:
    RunFolder(tmp_path / "run", total=1)  # dropped without close(), as the older callers do
    holder = _hold(tmp_path / "run")
    holder.kill()
    holder.wait()

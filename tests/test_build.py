"""The main job: the resumable run folder, and `harlite build --quick` end to end on the real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import harlite.pipeline.bench as bench
from harlite.bundle.loader import load_bundle
from harlite.cli import main
from harlite.io.hashing import sha256_file
from harlite.pipeline.stages import RunFolder


def test_a_stage_is_redone_only_when_its_inputs_or_an_earlier_stage_change(tmp_path: Path) -> None:
    calls: list[str] = []

    def stage(name: str) -> dict[str, str]:
        calls.append(name)
        (tmp_path / f"{name}.out").write_text(name)
        return {"made": name}

    def run(a_param: int) -> dict[str, object]:
        folder = RunFolder(tmp_path, total=2)
        folder.stage("a", {"p": a_param}, ["a.out"], lambda: stage("a"))
        folder.stage("b", {}, ["b.out"], lambda: stage("b"))
        return folder.results

    assert run(1) == {"a": {"made": "a"}, "b": {"made": "b"}} and calls == ["a", "b"]
    assert run(1) == {"a": {"made": "a"}, "b": {"made": "b"}} and calls == ["a", "b"]  # all kept
    (tmp_path / "b.out").unlink()  # a lost output is made again
    run(1)
    assert calls == ["a", "b", "b"]
    run(2)  # a changed parameter redoes that stage and every later one
    assert calls == ["a", "b", "b", "a", "b"]


@pytest.mark.slow
def test_quick_build_runs_every_stage_then_resumes_without_redoing_any(tmp_path: Path, harlite_cache: Path) -> None:
    out, release = tmp_path / "run", tmp_path / "models" / "quick"
    args = ["build", "--quick", "--out", str(out), "--release", str(release), "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    results = json.loads(first.stdout)
    assert set(results["seconds"]) == {"data", "train", "qat", "convert", "parity", "simulate", "report"}
    manifest = load_bundle(release).manifest
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in manifest["ops"] and results["parity"]["passed"]
    assert (release / "tflm" / "harlite_model_data.cpp").exists() and (release / "report_timeline.png").exists()
    report = (out / "report.md").read_text()
    assert "## Parity" in report and f"{manifest['artifacts']['int8']['bytes']:,} B" in report
    int8 = sha256_file(release / "model_int8.tflite")

    again = CliRunner().invoke(main, args)  # the release exists: refused without --force
    assert again.exit_code == 2 and "--force" in again.output
    resumed = CliRunner().invoke(main, [*args, "--force"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stderr.count("unchanged, kept") == 7
    assert sha256_file(release / "model_int8.tflite") == int8

    # A flipped byte in the bundle's int8 model and a lost C array: the stages from convert on are redone.
    model = out / "bundle" / "model_int8.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    (out / "bundle" / "tflm" / "harlite_model_data.cpp").unlink()
    repaired = CliRunner().invoke(main, [*args, "--force"])
    assert repaired.exit_code == 0, repaired.output
    assert repaired.stderr.count("unchanged, kept") == 3  # data, train, qat
    assert "[4/7] convert... (bundle was altered)" in repaired.stderr
    assert load_bundle(out / "bundle").read("int8") == (release / "model_int8.tflite").read_bytes()
    assert sha256_file(release / "model_int8.tflite") == int8  # the same conversion again


@pytest.mark.parametrize(("options", "models"), [([], ("cnn_lstm", "lstm")), (["--models", "cnn_lstm"], ("cnn_lstm",))])
def test_bench_train_trains_the_models_asked_for(options: list[str], models: tuple[str, ...], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    asked = []
    monkeypatch.setattr(bench, "bench_train", lambda **kwargs: asked.append(kwargs) or {"models": {}})
    done = CliRunner().invoke(main, ["bench", "train", "--seeds", "2", *options, "--json", str(tmp_path / "b.json")])
    assert done.exit_code == 0, done.output
    assert asked == [{"models": models, "seeds": (0, 1)}]
    assert CliRunner().invoke(main, ["bench", "train", "--models", "gru"]).exit_code == 2


def test_bench_data_loads_the_split_cold_then_warm_from_a_private_cache(harlite_cache: Path) -> None:
    """The data section reads its windows (kept in a temporary cache, read lazily) before that cache goes."""
    from harlite.data.windows import load_split

    figures = bench.bench_data()
    split = load_split()
    assert (figures["train_windows"], figures["test_windows"]) == (len(split.pool), len(split.test)) != (0, 0)
    assert figures["cold_load_s"] > 0 and figures["warm_load_s"] >= 0 and isinstance(figures["pass"], bool)

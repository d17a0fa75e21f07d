"""harlite parity: the four runtimes on real test windows, the thresholds, the reports and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures_bundle import bundle_split, copy_bundle
from test_bundle import record

from harlite.cli import main
from harlite.core.protocol import HAPT
from harlite.data.windows import DataSpec, Split, WindowSet
from harlite.errors import HarliteError
from harlite.run.parity import RUNTIMES, Thresholds, _check, check, compare, parity, select_windows


@pytest.fixture(scope="module")
def report(tiny_bundle: Path, _session_cache: Path) -> dict:  # noqa: F811
    split = bundle_split(tiny_bundle, _session_cache)
    return parity(tiny_bundle, split=replace(split, test=select_windows(split, "test", 300)), limit=200)


def test_report_compares_every_pair_of_runtimes(report: dict) -> None:
    assert report["windows"] == 200 and set(report["runtimes"]) == set(RUNTIMES)
    assert len(report["pairs"]) == 6 and "tflm|litert-int8" in report["pairs"]
    assert report["pairs"]["litert-float32|keras"]["agreement"] == 1.0
    assert report["pairs"]["litert-float32|keras"]["max_abs_diff"] < 1e-5
    tflm = report["pairs"]["tflm|litert-int8"]
    assert tflm["agreement"] >= 0.98 and tflm["max_abs_diff"] < 0.1 and len(tflm["worst"]) == 5
    for r in report["runtimes"].values():
        assert 0.4 < r["accuracy"] <= 1 and r["ms_per_window"] > 0
    assert [c["passed"] for c in report["checks"]][:2] == [True, True]


def test_compare_counts_agreement_and_lists_disagreements_first() -> None:
    a = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]], np.float32)
    b = np.array([[0.5, 0.5], [0.4, 0.6], [0.2, 0.8], [0.5, 0.5]], np.float32)
    windows = WindowSet(np.zeros((4, 1, 1)), np.array([0, 0, 1, 1]), np.array(["2", "4", "9", "10"]))
    got = compare(a, b, windows)
    assert got["agreement"] == 0.75 and got["disagreements"] == 1
    assert np.isclose(got["max_abs_diff"], 0.4) and np.isclose(got["mean_abs_diff"], 1.2 / 8)
    assert [w["window"] for w in got["worst"]] == [1, 0, 2, 3] and got["worst"][0]["pred"] == [0, 1]


def test_a_breach_names_the_threshold_and_its_size(report: dict) -> None:
    strict = Thresholds(min_tflm_agreement=1.01, max_int8_drop=-5.0)
    checks = {c["name"]: c for c in check(report, strict)}
    tflm = checks["TFLM vs LiteRT int8 top-1 agreement"]
    assert not tflm["passed"]
    short = 100 * (1.01 - report["pairs"]["tflm|litert-int8"]["agreement"])
    assert f"(minimum 101.00%), short by {short:.2f} points" in tflm["message"]
    drop = checks["TFLM int8 accuracy drop vs Keras float (points)"]
    assert not drop["passed"] and "over by" in drop["message"]


def test_select_windows_spreads_a_limit_over_the_split() -> None:
    windows = WindowSet(np.zeros((10, 1, 1)), np.arange(10) % 6, np.array(["1", "2"] * 5))
    pool, test = windows.of_groups(["1"]), windows.of_groups(["2"])
    split = Split(DataSpec(), HAPT, pool, pool.take(np.zeros(len(pool), bool)), test, pool, "subject")
    part = select_windows(split, "test", 3)
    assert len(part) == 3 and set(part.group.tolist()) == {"2"}
    assert len(select_windows(split, "all", 4)) == 4 and len(select_windows(split, "all")) == 10
    assert set(select_windows(split, "train").group.tolist()) == {"1"}
    with pytest.raises(HarliteError, match="unknown split"):
        select_windows(split, "val")
    with pytest.raises(HarliteError, match="no windows"):
        select_windows(replace(split, test=test.take(np.zeros(len(test), bool))), "test")


def test_float_rounding_is_not_a_breach() -> None:
    """A drop of 1.0000000000000009 points against a 1.0 limit (float arithmetic) passes; 1.01 does not."""
    assert _check("drop", 1.0000000000000009, 1.0, at_least=False)["passed"]
    assert _check("agreement", 0.98999999999999999, 0.99, at_least=True)["passed"]
    assert not _check("drop", 1.01, 1.0, at_least=False)["passed"]


def test_cli_writes_reports_prints_json_and_reruns(tiny_bundle, tmp_path, harlite_cache) -> None:  # noqa: F811
    args = ["parity", str(tiny_bundle), "--limit", "120", "--max-int8-drop", "10", "--out", str(tmp_path), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["passed"] and printed["windows"] == 120
    assert json.loads((tmp_path / "parity.json").read_text())["pairs"] == printed["pairs"]
    md = (tmp_path / "parity.md").read_text()
    assert "**PASSED**" in md and "| TFLM int8 vs LiteRT int8 |" in md and "Worst windows" in md
    assert "parity: TFLM int8" in result.stderr and "parity passed" in result.stderr
    rerun = CliRunner().invoke(main, args)  # its own reports are replaced without --force
    assert rerun.exit_code == 0, rerun.output
    (tmp_path / "parity.md").write_text("my notes\n")
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "--force" in refused.output


def test_cli_breach_on_a_mismatched_pair_exits_1(tiny_bundle, tmp_path, harlite_cache) -> None:  # noqa: F811
    from harlite.bundle.run_folder import load_model, save_model

    bundle = copy_bundle(tiny_bundle, tmp_path / "bundle")
    model = load_model(bundle / "model.keras")
    dense = model.get_layer("classes")
    kernel, bias = dense.get_weights()
    dense.set_weights([np.roll(kernel, 1, axis=1), np.roll(bias, 1)])  # Keras now names the next class
    save_model(model, bundle / "model.keras")
    record(bundle, "keras")  # a model of another build, recorded as the bundle's
    result = CliRunner().invoke(main, ["parity", str(bundle), "--limit", "60", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "FAILED LiteRT float32 vs Keras top-1 agreement" in result.stderr and "short by" in result.stderr
    assert "parity FAILED" in result.stderr
    assert json.loads((tmp_path / "out" / "parity.json").read_text())["passed"] is False
    assert not (bundle / "parity.json").exists()  # a check does not write into the bundle


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["parity", "--help"])
    assert result.exit_code == 0 and "harlite parity models/" in result.output

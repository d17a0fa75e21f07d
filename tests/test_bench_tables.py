"""README.md's and firmware/README.md's figures are those of benchmarks/bench.json (scripts/bench_tables.py
renders them; scripts/bench.sh measures and renders in one go), and bench.json holds the firmware's
figures on every core, from one bundle."""

from __future__ import annotations

import importlib.util
import json

from fixtures_firmware import REPO

from harlite.board.toolchain import CORES

BENCH = json.loads((REPO / "benchmarks" / "bench.json").read_text())


def bench_tables() -> object:
    spec = importlib.util.spec_from_file_location("bench_tables", REPO / "scripts" / "bench_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_quote_bench_json() -> None:
    assert bench_tables().update(REPO, BENCH, check=True) == [], "run python scripts/bench_tables.py"


def test_bench_json_measures_every_core_of_the_released_bundle() -> None:
    fw = BENCH["firmware"]
    assert list(fw["cores"]) == list(CORES) and fw["limits"]["pass"]
    for name, core in fw["cores"].items():
        assert core["windows"] == core["pred_lines_as_cortex-m4"] == 280 and core["failed_windows"] == 0, name
    assert BENCH["bundle"]["bytes"]["int8"] == json.loads((REPO / "models/cnn_lstm/manifest.json").read_text())[
        "artifacts"]["int8"]["bytes"]  # fmt: skip


def test_a_bench_run_into_bench_json_keeps_the_sections_it_did_not_measure(tmp_path, monkeypatch) -> None:
    """``harlite bench scale --json benchmarks/bench.json --force`` adds the scale section and keeps the
    others (each with the date it was measured); a JSON harlite bench did not write is replaced whole."""
    from click.testing import CliRunner

    from harlite.cli import main
    from harlite.pipeline import bench

    monkeypatch.setitem(bench._SECTION_RUNNERS, "scale", lambda **_: {"pass": True, "sizes": {}})
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(BENCH))
    assert CliRunner().invoke(main, ["bench", "scale", "--json", str(path)]).exit_code == 2  # not without --force
    result = CliRunner().invoke(main, ["bench", "scale", "--json", str(path), "--force"])
    assert result.exit_code == 0, result.output
    written = json.loads(path.read_text())
    assert list(written) == ["machine", "date", *[s for s in bench.SECTIONS if s in BENCH or s == "scale"]]
    assert written["firmware"] == {**BENCH["firmware"], "date": BENCH["firmware"].get("date", BENCH["date"])}
    assert written["scale"]["pass"] and written["scale"]["date"] == written["date"] != BENCH["date"]
    path.write_text(json.dumps({"scale": 1}))
    assert CliRunner().invoke(main, ["bench", "scale", "--json", str(path), "--force"]).exit_code == 0
    assert list(json.loads(path.read_text())) == ["machine", "date", "scale"]

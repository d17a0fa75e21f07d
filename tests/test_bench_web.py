"""``harlite bench web``: the released bundle's web export measured in headless Chromium on a HAPT test
recording, its figures about the files it served and its predictions checked against ``simulate --runtime c``
(no timing is asserted: only that the figures are there and could be wrong)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import harlite.pipeline.bench_web as bench_web
from harlite.bundle.loader import load_bundle

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "models" / "cnn_lstm"
SECONDS = 20.0  # 1000 samples at 50 Hz: 14 windows of 128 every 64


@pytest.fixture(scope="module")
def released() -> object:
    return load_bundle(RELEASED)


def test_the_web_bench_measures_what_the_export_writes(released: object, harlite_cache: Path, tmp_path: Path) -> None:
    figures = bench_web.bench_web(released, seconds=SECONDS, runs=2)
    assert figures["identical_predictions"] is True
    assert figures["samples"] == 1000 and figures["windows"] == (1000 - 128) // 64 + 1
    assert figures["recording"] == "hapt:exp03_user02, first 1000 samples"  # HAPT test subject 2's first
    assert figures["chromium"].split("/")[0] in ("Chrome", "HeadlessChrome") and figures["runs"] == 2
    for path in ("harlite_js.ms_per_window", "harlite_js.samples_per_s", "page_devicemotion_events_per_s",
                 "host_c_engine_ms_per_window"):  # fmt: skip
        first, second = path.split(".") if "." in path else (path, None)
        value = figures[first][second] if second else figures[first]
        assert set(value) == {"best", "median"} and 0 < value["best"] and 0 < value["median"], path
    done = subprocess.run([sys.executable, "-m", "harlite", "export", str(RELEASED), "--format", "web", "--out",
                           str(tmp_path / "web")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "web").iterdir() if not p.name.startswith(".")}
    assert figures["files"] == sizes and figures["export_bytes"] == sum(sizes.values())
    assert figures["wasm_bytes"] == sizes["harlite.wasm"] == json.loads((tmp_path / "web/manifest.json").read_text())[
        "wasm"]["bytes"]  # fmt: skip


def test_the_web_bench_tells_wrong_predictions(released: object, harlite_cache: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """One score of one window off in what simulate --runtime c gives, and the bench says so."""
    simulate = bench_web.simulate

    def off_by_one(*args: object, **kwargs: object) -> object:
        result = simulate(*args, **kwargs)
        outputs = result.traces[0].outputs
        outputs[len(outputs) // 2, 0] = np.int8(outputs[len(outputs) // 2, 0] ^ 1)
        return result

    monkeypatch.setattr(bench_web, "simulate", off_by_one)
    assert bench_web.bench_web(released, seconds=SECONDS, runs=1)["identical_predictions"] is False


def test_harlite_bench_web_without_chromium_says_how_to_get_it(harlite_cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HARLITE_CHROMIUM": "no-such-chromium"}
    done = subprocess.run([sys.executable, "-m", "harlite", "bench", "web", "--bundle", str(RELEASED), "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    skipped = json.loads(done.stdout)["web"]["skipped"]
    assert skipped.startswith("no-such-chromium not found: apt-get install chromium") and "\n" not in skipped
    assert list(tmp_path.iterdir()) == []

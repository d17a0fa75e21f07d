"""The web section of ``harlite bench``: the bundle's web export (``harlite export --format web``) served on
loopback and run in headless Chromium, on the firmware bench's recording (``bench_firmware.bench_recording``:
the first 360 s of HAPT test subject 2's first recording for the released bundle).

It measures the export's bytes; the whole per-sample path through ``harlite.js`` (``push`` with objects, as a
page calls it: the resampler, front end, C engine and smoothing in WebAssembly), as ms per window and
samples/s; ``devicemotion`` events/s through the page's handler (units, push, display); and, for comparison,
the C engine alone on the host as ``harlite simulate --runtime c`` runs it (``harlite.run.host_engine``). A
bench that measured wrong output is worthless: it also checks that the int8 scores of ``harlite.js`` and of
the page are those of ``simulate --runtime c`` on the same samples.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.loader import Bundle
from harlite.data.recordings import Recording
from harlite.errors import HarliteError, ToolMissing
from harlite.pipeline.bench_firmware import BENCH_SECONDS, bench_recording
from harlite.pipeline.export import export
from harlite.run.runtimes import open_runtime
from harlite.run.simulate import simulate
from harlite.web.chromium import Browser, executable, loopback_site
from harlite.web.export import toolchain

RUNS = 5
SAMPLES_FILE = "samples.f32"  # the recording's samples, float32 little-endian, raw channels per row

# Every run pushes all samples into one classifier (reset first), building each sample as a page would;
# the first, untimed, keeps the int8 scores.
HARLITE_JS = """(async ({ file, nRaw, rate, runs }) => {
  const { loadClassifier } = await import('./web/harlite.js');
  const clf = await loadClassifier('./web');
  const data = new Float32Array(await (await fetch(file)).arrayBuffer());
  const n = data.length / nRaw;
  const sample = (i) => ({ t: i / rate, acc: [data[i * nRaw], data[i * nRaw + 1], data[i * nRaw + 2]],
    gyro: nRaw === 6 ? [data[i * nRaw + 3], data[i * nRaw + 4], data[i * nRaw + 5]] : undefined });
  const scores = [];
  for (let i = 0; i < n; i++) for (const p of clf.push(sample(i))) scores.push(p.scores);
  const ms = [];
  for (let run = 0; run < runs; run++) {
    clf.reset();
    const start = performance.now();
    for (let i = 0; i < n; i++) clf.push(sample(i));
    ms.push(performance.now() - start);
  }
  return { samples: n, scores, ms, windows: clf.stats.windows };
})"""

# The same samples as a phone's devicemotion events (m/s^2 and deg/s, Android's sign), made beforehand and
# dispatched to the page's handler once per run (the page's classifier reset first).
PAGE = """(async ({ file, nRaw, rate, runs }) => {
  const $ = (id) => document.getElementById(id);
  if ($('flip').checked) $('flip').click();
  const data = new Float32Array(await (await fetch(file)).arrayBuffer());
  const n = data.length / nRaw, G = 9.80665, DEG = 180 / Math.PI;
  const events = [];
  for (let i = 0; i < n; i++) {
    const f = data.subarray(i * nRaw, (i + 1) * nRaw);
    const event = new DeviceMotionEvent('devicemotion', { interval: 1000 / rate,
      accelerationIncludingGravity: { x: f[0] * G, y: f[1] * G, z: f[2] * G },
      rotationRate: nRaw === 6 ? { alpha: f[3] * DEG, beta: f[4] * DEG, gamma: f[5] * DEG } : null });
    Object.defineProperty(event, 'timeStamp', { value: 1000 + (i / rate) * 1000 });
    events.push(event);
  }
  const ms = [];
  let scores = null;
  for (let run = 0; run < runs; run++) {
    harlitePage.clf.reset();
    harlitePage.predictions.length = 0;
    const start = performance.now();
    for (const event of events) window.dispatchEvent(event);
    ms.push(performance.now() - start);
    scores = scores ?? harlitePage.predictions.map((p) => p.scores);
  }
  return { events: n, scores, ms };
})"""


def bench_web(bundle: Bundle, seconds: float = BENCH_SECONDS, runs: int = RUNS) -> dict[str, Any]:
    """The web section of ``harlite bench`` (see the module); skipped, saying why, without clang, wasm-ld or
    chromium."""
    try:
        return measure_web(bundle, seconds, runs)
    except ToolMissing as missing:
        return {"skipped": str(missing)}


def measure_web(bundle: Bundle, seconds: float = BENCH_SECONDS, runs: int = RUNS) -> dict[str, Any]:
    """Export, serve, open in Chromium and measure (``bench_web``); ToolMissing without the tools."""
    executable()  # before the minutes of work, the tools: chromium, then (the export) clang and wasm-ld
    toolchain()
    source, raw = bench_recording(bundle, seconds)
    spec = bundle.frontend()
    trace = simulate(bundle, [Recording(raw, spec.rate_hz, raw_channels=spec.raw_channels, source=source)], "c")
    expected = trace.traces[0].outputs
    if not len(expected):
        raise HarliteError(f"{source}: shorter than one window ({spec.window} samples): nothing to measure.")
    with tempfile.TemporaryDirectory(prefix="harlite-bench-web-") as tmp:
        site = Path(tmp)
        files = sorted(export(bundle, "web", site / "web")["files"])
        sizes = {name: (site / "web" / name).stat().st_size for name in files}
        (site / SAMPLES_FILE).write_bytes(np.ascontiguousarray(raw, "<f4").tobytes())
        (site / "index.html").write_text("<!doctype html><title>harlite bench</title>")
        args = json.dumps({"file": f"/{SAMPLES_FILE}", "nRaw": raw.shape[1], "rate": spec.rate_hz, "runs": runs})
        with loopback_site(site) as url, Browser() as browser:
            version = browser.version()
            blank = browser.page(f"{url}/index.html")
            blank.wait("document.readyState === 'complete'")
            pushed = blank.eval(f"{HARLITE_JS}({args})", timeout=600)
            page = browser.page(f"{url}/web/index.html")
            page.wait("window.harlitePage !== undefined")
            page.eval("harlitePage.ready.then(() => true)")
            page.eval("document.getElementById('start').click()", gesture=True)
            page.wait("!document.getElementById('record').disabled")
            handled = page.eval(f"{PAGE}({args})", timeout=600)
    windows = len(expected)
    # harlite.js's scores and the page's are simulate's, and the last timed run made as many windows
    identical = (
        _same(pushed["scores"], expected) and _same(handled["scores"], expected) and pushed["windows"] == windows
    )
    return {
        "recording": source,
        "samples": len(raw),
        "windows": windows,
        "chromium": version,
        "export_bytes": sum(sizes.values()),
        "wasm_bytes": sizes["harlite.wasm"],
        "files": sizes,
        "identical_predictions": identical,
        "harlite_js": {
            "ms_per_window": _best_median([ms / windows for ms in pushed["ms"]]),
            "samples_per_s": _best_median([len(raw) / ms * 1e3 for ms in pushed["ms"]], max, 0),
        },
        "page_devicemotion_events_per_s": _best_median([len(raw) / ms * 1e3 for ms in handled["ms"]], max, 0),
        "host_c_engine_ms_per_window": _host_engine_ms(bundle, trace.traces[0].inputs, runs),
        "runs": runs,
    }


def _same(scores: list[list[int]], expected: np.ndarray) -> bool:
    return len(scores) == len(expected) and np.array_equal(np.array(scores, np.int64).reshape(expected.shape), expected)


def _host_engine_ms(bundle: Bundle, inputs: np.ndarray, runs: int) -> dict[str, float]:
    """ms per window of the C engine alone, compiled for this host as ``simulate --runtime c`` compiles it."""
    engine = open_runtime(bundle, "c").engine
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for window in inputs:
            engine.invoke_int8(window)
        times.append((time.perf_counter() - start) / len(inputs) * 1e3)
    return _best_median(times)


def _best_median(values: list[float], best: Any = min, digits: int = 4) -> dict[str, float]:
    return {"best": round(best(values), digits), "median": round(statistics.median(values), digits)}

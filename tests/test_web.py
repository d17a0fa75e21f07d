"""`harlite export --format web` in headless Chromium: harlite.js and the page give `simulate --runtime c`'s bits.

The export of the released bundle is served statically on loopback (a secure context); a page of the
test's own imports harlite.js from it, as a web developer would. Recordings are real HAPT test recordings,
as written (50 Hz) and made irregular (about 60 Hz, intervals varying by +-40%, times from 1234.5 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harlite.bundle.loader import load_bundle
from harlite.data.hapt import load_hapt
from harlite.data.recordings import read_csv, write_csv
from harlite.run.simulate import simulate
from harlite.web.chromium import Browser, loopback_site

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "models" / "cnn_lstm"
SAMPLES = 6000  # two minutes of one recording: 92 windows
G, RAD = 9.80665, 180 / np.pi

# Push the rows of a CSV (fetched from the test server) into harlite.js; every window's scores and input.
PUSH_CSV = """(async (path) => {
  const { loadClassifier } = await import('./web/harlite.js');
  const clf = await loadClassifier('./web', { keepInputs: true });
  const rows = (await (await fetch(path)).text()).trim().split('\\n').slice(1).map((l) => l.split(',').map(Number));
  const out = [];
  for (const f of rows) {
    for (const p of clf.push({ t: f[0], acc: [f[1], f[2], f[3]], gyro: [f[4], f[5], f[6]] })) {
      out.push({ scores: p.scores, input: Array.from(p.input), start_s: p.start_s, label: p.label, p: p.p });
    }
  }
  return out;
})"""


# Dispatch devicemotion events made from a CSV's rows (g and rad/s turned into a phone's m/s^2 and deg/s,
# iOS's acceleration negated) into the page, recording them under a label; its predictions and recording.
PAGE_EVENTS = """(async ({ path, ios, label }) => {
  const rows = (await (await fetch(path)).text()).trim().split('\\n').slice(1).map((l) => l.split(',').map(Number));
  const sign = ios ? -9.80665 : 9.80665, DEG = 180 / Math.PI, $ = (id) => document.getElementById(id);
  if ($('flip').checked !== ios) $('flip').click();
  $('new-label').value = label;
  $('record').click();
  for (const f of rows) {
    const event = new DeviceMotionEvent('devicemotion', { interval: 20,
      accelerationIncludingGravity: { x: f[1] * sign, y: f[2] * sign, z: f[3] * sign },
      rotationRate: { alpha: f[4] * DEG, beta: f[5] * DEG, gamma: f[6] * DEG } });
    Object.defineProperty(event, 'timeStamp', { value: 98765.4 + f[0] * 1000 });
    window.dispatchEvent(event);
  }
  $('record').click();
  while (!$('saved').textContent) await new Promise((r) => setTimeout(r, 20));
  return { scores: harlitePage.predictions.map((p) => p.scores), csv: harlitePage.recordings[0].csv,
           shown: $('current').textContent, saved: $('saved').textContent };
})"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> dict:
    """The export (made by the CLI) and the recordings, served on loopback; a browser on them."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HARLITE_CACHE", str(_session_cache))
    root = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "harlite", "export", str(RELEASED), "--format", "web",
                           "--out", str(root / "web")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rec = load_hapt(["2"])[0]
    rec = type(rec)(rec.samples[:SAMPLES], rec.rate, rec.labels[:SAMPLES], rec.classes, source="hapt")
    write_csv(rec, root / "steady.csv")
    rng = np.random.default_rng(0)
    t50 = np.arange(len(rec)) / 50.0
    t = np.cumsum(np.r_[0.0, rng.uniform(0.6, 1.4, int(len(rec) * 1.2)) / 60])
    t = t[t <= t50[-1]]
    values = np.stack([np.interp(t, t50, rec.samples[:, c]) for c in range(6)], axis=1).astype(np.float32)
    with open(root / "irregular.csv", "w") as f:
        f.write("time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n")
        f.writelines(",".join(map(repr, [1234.5 + float(ti), *map(float, row)])) + "\n" for ti, row in zip(t, values))
    (root / "index.html").write_text("<!doctype html><title>check</title>")
    with loopback_site(root) as url, Browser() as browser:
        page = browser.page(f"{url}/index.html")
        page.wait("document.readyState === 'complete'")
        yield {"root": root, "page": page, "browser": browser, "url": url}
    patch.undo()


def simulated(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, inputs and window starts of `harlite simulate --runtime c` on a CSV."""
    trace, rate = simulated_trace(path)
    return trace.outputs, trace.inputs, trace.starts / rate


def simulated_trace(path: Path) -> tuple[Any, float]:
    """`harlite simulate --runtime c`'s trace of a CSV, and the bundle's rate."""
    bundle = load_bundle(RELEASED)
    rate = bundle.frontend().rate_hz
    return simulate(bundle, [read_csv(path, rate)], runtime="c").traces[0], rate


@pytest.mark.parametrize("name", ["steady.csv", "irregular.csv"])
def test_harlite_js_gives_the_int8_scores_of_simulate(site: dict, name: str) -> None:
    got = site["page"].eval(f"{PUSH_CSV}('/{name}')")
    scores, inputs, starts = simulated(site["root"] / name)
    assert len(got) == len(scores) > 80
    assert np.array_equal(np.array([w["scores"] for w in got]), scores)
    assert np.array_equal(np.array([w["input"] for w in got]).reshape(inputs.shape), inputs)
    assert np.allclose([w["start_s"] for w in got], starts, atol=1e-9)
    trace, _ = simulated_trace(site["root"] / name)
    names = [*load_bundle(RELEASED).labels, "unknown"]
    assert [w["label"] for w in got] == [names[i] for i in trace.raw]  # the unknown decision as simulate's
    assert {"STANDING", "SITTING", "unknown"} <= {w["label"] for w in got}  # standing, sitting and transitions


def open_page(site: dict) -> Any:
    """A fresh tab on the export's page, its motion sensors started (the Start button's tap)."""
    page = site["browser"].page(f"{site['url']}/web/index.html")
    page.wait("window.harlitePage !== undefined")
    page.eval("harlitePage.ready.then(() => true)")
    page.eval("document.getElementById('start').click()", gesture=True)
    page.wait("!document.getElementById('record').disabled")
    return page


@pytest.mark.parametrize("ios", [False, True])
def test_the_page_predicts_from_devicemotion_and_records_what_the_model_saw(
    site: dict, tmp_path: Path, ios: bool
) -> None:
    page = open_page(site)
    got = page.eval(f"{PAGE_EVENTS}({json.dumps({'path': '/steady.csv', 'ios': ios, 'label': 'brushing teeth'})})")
    scores, _, _ = simulated(site["root"] / "steady.csv")
    assert np.array_equal(np.array(got["scores"]), scores)  # the phone's units and axes, mapped back exactly
    assert got["shown"] and "downloaded brushing_teeth-" in got["saved"]
    (tmp_path / "phone.csv").write_text(got["csv"])
    recorded, sent = read_csv(tmp_path / "phone.csv"), read_csv(site["root"] / "steady.csv")
    assert recorded.rate == 50.0 and np.array_equal(recorded.samples, sent.samples)
    assert set(recorded.label_names) == {"brushing teeth"}


def test_the_page_reads_chromiums_motion_sensors(site: dict) -> None:
    """The real event path: Chromium's emulated accelerometer and gyroscope, about 60 events/s for 3.5 s."""
    sensors = ("accelerometer", "linear-acceleration", "gyroscope")
    readings = {
        "accelerometer": (0.0, 9.80665, 0.0),
        "linear-acceleration": (0.0, 0.0, 0.0),
        "gyroscope": (0.5, 0.0, 0.0),
    }
    before = [("Emulation.setSensorOverrideEnabled", {"enabled": True, "type": t}) for t in sensors]
    before += [("Emulation.setSensorOverrideReadings", {"type": t, "reading": {"xyz": dict(zip("xyz", readings[t]))}})
               for t in sensors]  # fmt: skip
    page = site["browser"].page(f"{site['url']}/web/index.html", before)
    page.wait("window.harlitePage !== undefined")
    page.eval("harlitePage.ready.then(() => true)")
    page.eval("document.getElementById('flip').checked && document.getElementById('flip').click()")  # Android's sign
    page.eval("document.getElementById('start').click()", gesture=True)
    page.wait("harlitePage.predictions.length > 0", timeout=15)  # 2.56 s of samples make the first window
    shown = page.eval("['acc-x', 'acc-y', 'acc-z', 'gyro-x'].map((id) => document.getElementById(id).textContent)")
    assert shown == ["0.00", "1.00", "0.00", "0.50"]  # upright, turning about x: g and rad/s
    assert page.eval("harlitePage.events") > 120 and page.eval("harlitePage.clf.stats.dropped") == 0


def test_the_export_is_self_contained_and_checked_before_use(site: dict) -> None:
    web = site["root"] / "web"
    names = sorted(p.name for p in web.iterdir() if not p.name.startswith("."))
    assert names == ["app.js", "harlite.js", "harlite.wasm", "index.html", "manifest.json", "style.css"]
    for name in ("index.html", "app.js", "harlite.js", "style.css"):  # all assets local: no CDN, no other host
        text = (web / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    tampered = site["root"] / "tampered"
    shutil.copytree(web, tampered)
    wasm = bytearray((tampered / "harlite.wasm").read_bytes())
    wasm[-1] ^= 1
    (tampered / "harlite.wasm").write_bytes(bytes(wasm))
    error = site["page"].eval(
        "import('./web/harlite.js').then((m) => m.loadClassifier('./tampered')).then(() => 'loaded', (e) => e.message)"
    )
    assert "sha256 differs from manifest.json" in error


def test_export_refuses_a_folder_it_did_not_write(tmp_path: Path, _session_cache: Path) -> None:
    (tmp_path / "index.html").write_text("my own page")
    env = {**os.environ, "HARLITE_CACHE": str(_session_cache)}
    command = [sys.executable, "-m", "harlite", "export", str(RELEASED), "--format", "web", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "harlite did not write" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "index.html").read_text() == "my own page"
    assert subprocess.run([*command, "--force"], capture_output=True, env=env).returncode == 0
    assert (tmp_path / "index.html").read_text().startswith("<!doctype html>")

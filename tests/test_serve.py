"""`harlite serve` as a user runs it: a real HTTPS server on loopback, the page in headless Chromium.

A phone's recordings land in the data folder as a dataset that `harlite data info` reads; requests without
the token, traversals, malformed or oversized uploads, other methods and a second writer are refused with
a 4xx (or exit 2) and leave the data folder as it was; Ctrl-C stops the server cleanly.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from harlite.data.hapt import load_hapt
from harlite.data.recordings import read_csv, write_csv
from harlite.web.chromium import Browser

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "models" / "cnn_lstm"
HEADER = "time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z,label"


def _rows(n: int = 200, rate: float = 50.0, label: str = "walk") -> list[str]:
    return [f"{k / rate:g},0.1,0.9,0.2,0.01,0.02,0.03,{label}" for k in range(n)]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path):
    """`harlite serve models/cnn_lstm --data DATA --port 0` in a subprocess; stopped with Ctrl-C (SIGINT)."""
    data = tmp_path_factory.mktemp("data")
    (data / "carol").mkdir()
    (data / "carol" / "notes.txt").write_text("not harlite's")  # a file the server must leave alone
    env = {**__import__("os").environ, "HARLITE_CACHE": str(_session_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "harlite", "serve", str(RELEASED), "--data", str(data), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    url = proc.stdout.readline().strip()
    assert url.startswith("https://127.0.0.1:"), proc.stderr.read() if not url else url  # loopback by default
    cert = _session_cache / "serve" / "cert.pem"
    context = ssl.create_default_context(cafile=str(cert))
    info = {"url": url, "data": data, "proc": proc, "context": context, "cert": cert, "env": env,
            "token": urlsplit(url).path.strip("/")}  # fmt: skip
    yield info
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    info["stderr"] = err
    assert proc.returncode == 0, err
    assert "stopped:" in err and "Traceback" not in err
    assert "█" in out  # the QR code of the URL, after it on stdout
    assert "only this computer can open this page (loopback)" in err


def request(server: dict, path: str, method: str = "GET", body: bytes | None = None,
            kind: str | None = "text/csv") -> tuple[int, bytes]:  # fmt: skip
    parts = urlsplit(server["url"])
    headers = {"Content-Type": kind} if kind and body is not None else {}
    req = urllib.request.Request(f"{parts.scheme}://{parts.netloc}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=server["context"], timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_phone_records_into_the_dataset_that_data_info_reads(server: dict, tmp_path: Path) -> None:
    rec = load_hapt(["4"])[0]
    steady = write_csv(type(rec)(rec.samples[:1500], 50.0, source="hapt"), tmp_path / "steady.csv")
    pin = base64.b64encode(hashlib.sha256(_spki(server["cert"])).digest()).decode()
    browser = Browser(f"--ignore-certificate-errors-spki-list={pin}")
    try:
        page = browser.page(server["url"])
        page.wait("window.harlitePage !== undefined")
        page.eval("harlitePage.ready.then(() => true)")
        assert page.eval("isSecureContext") and page.eval("harlitePage.server !== null")
        page.eval("document.getElementById('start').click()", gesture=True)
        page.wait("!document.getElementById('record').disabled")
        takes = [(subject, label) for subject in ("alice", "bob") for label in ("walking fast", "sitting")]
        for n, (subject, label) in enumerate(takes):  # time goes on from take to take
            saved = page.eval(_RECORD % json.dumps({"rows": steady.read_text(), "subject": subject, "label": label,
                                                    "start": 5000 + 100000 * n}))  # fmt: skip
            assert f"saved on the computer: {subject}/{label.replace(' ', '_')}-" in saved
    finally:
        browser.close()
    files = sorted(server["data"].glob("*/walking_fast-*.csv"))
    assert [f.parent.name for f in files] == ["alice", "bob"]
    back = read_csv(files[0])
    assert np.array_equal(back.samples, read_csv(steady).samples) and set(back.label_names) == {"walking fast"}
    done = subprocess.run([sys.executable, "-m", "harlite", "data", "info", "--data", str(server["data"]),
                           "--test-subjects", "bob", "--val-subjects", "0", "--json"],
                          capture_output=True, text=True, env=server["env"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "walking fast" in done.stdout and "alice" in done.stdout


_RECORD = """(async ({ rows, subject, label, start }) => {
  const $ = (id) => document.getElementById(id);
  const before = $('saved').children.length;
  $('subject').value = subject;
  $('new-label').value = label;
  $('record').click();
  for (const f of rows.trim().split('\\n').slice(1).map((l) => l.split(',').map(Number))) {
    const event = new DeviceMotionEvent('devicemotion', { interval: 20,
      accelerationIncludingGravity: { x: f[1] * 9.80665, y: f[2] * 9.80665, z: f[3] * 9.80665 },
      rotationRate: { alpha: f[4] * 180 / Math.PI, beta: f[5] * 180 / Math.PI, gamma: f[6] * 180 / Math.PI } });
    Object.defineProperty(event, 'timeStamp', { value: start + f[0] * 1000 });
    window.dispatchEvent(event);
  }
  $('record').click();
  for (let i = 0; i < 500 && $('saved').children.length === before; i++) await new Promise((r) => setTimeout(r, 20));
  return [$('saved').textContent, $('status').textContent, $('record-status').textContent, harlitePage.events].join(' | ');
})(%s)"""


def _spki(cert: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_without_the_token_nothing_is_served(server: dict) -> None:
    token = server["token"]
    good = _rows()
    for path in ("/", "/index.html", "/harlite.wasm", f"/{token[:-1]}/index.html", f"/{token}x/index.html",
                 f"/x/{token}/index.html", f"/{token.upper()}/manifest.json"):  # fmt: skip
        assert request(server, path)[0] == 403, path
    before = _files(server["data"])
    assert request(server, "/upload?subject=eve&label=walk", "POST", "\n".join([HEADER, *good]).encode())[0] == 403
    assert request(server, f"/{token}/index.html")[0] == 200
    assert _files(server["data"]) == before


def test_only_the_exports_files_are_served(server: dict) -> None:
    token = server["token"]
    status, body = request(server, f"/{token}/")
    assert status == 200 and body.startswith(b"<!doctype html>")  # the page, not a listing
    assert request(server, f"/{token}/harlite.wasm")[1][:4] == b"\0asm"
    for path in ("/../../etc/passwd", "/assets/", "/.harlite.lock", "/%2e%2e/%2e%2e/etc/passwd", "/harlite_web.c"):
        assert request(server, f"/{token}{path}")[0] == 404, path


@pytest.mark.parametrize(("query", "body", "kind", "status"), [
    ("subject=../eve&label=walk", None, "text/csv", 400),
    ("subject=..&label=walk", None, "text/csv", 400),
    ("subject=.hidden&label=walk", None, "text/csv", 400),
    ("subject=a/b&label=walk", None, "text/csv", 400),
    ("subject=eve&label=a,b", None, "text/csv", 400),
    ("subject=eve&label=" + "x" * 40, None, "text/csv", 400),
    ("subject=eve", None, "text/csv", 400),
    ("subject=eve&label=walk&label=run", None, "text/csv", 400),
    ("subject=eve&label=walk", "\n".join(["time_s,acc_x,acc_y,acc_z,label", *_rows()]), "text/csv", 400),
    ("subject=eve&label=walk", "\n".join([HEADER, *_rows(), "9,1,x,1,1,1,1,walk"]), "text/csv", 400),
    ("subject=eve&label=walk", "\n".join([HEADER, *_rows(), "9,1,nan,1,1,1,1,walk"]), "text/csv", 400),
    ("subject=eve&label=walk", "\n".join([HEADER, *_rows(), "0.5,1,1,1,1,1,1,walk"]), "text/csv", 400),
    ("subject=eve&label=walk", "\n".join([HEADER, *_rows(rate=100.0)]), "text/csv", 400),
    ("subject=eve&label=walk", "\n".join([HEADER, *_rows(label="a=b")]), "text/csv", 400),
    ("subject=eve&label=walk", "\n".join([HEADER, *_rows(1)]), "text/csv", 400),
    ("subject=eve&label=walk", "\n".join([HEADER, *[r.replace("0.9", "9.5") for r in _rows()]]), "text/csv", 400),
    ("subject=eve&label=walk", "\n".join([HEADER, *_rows()]), "text/plain", 415),
    ("subject=eve&label=walk", b"\xff\xfe" + b"x" * 100, "text/csv", 400),
])  # fmt: skip
def test_bad_uploads_are_refused_and_write_nothing(server: dict, query: str, body: str | bytes | None, kind: str,
                                                   status: int) -> None:  # fmt: skip
    body = "\n".join([HEADER, *_rows()]) if body is None else body
    before = _files(server["data"])
    got, answer = request(server, f"/{server['token']}/upload?{query}", "POST",
                          body.encode() if isinstance(body, str) else body, kind)  # fmt: skip
    assert got == status and json.loads(answer)["error"]
    assert _files(server["data"]) == before
    assert not (server["data"].parent / "eve").exists()


def test_oversized_chunked_and_other_methods_are_refused(server: dict) -> None:
    parts = urlsplit(server["url"])
    before = _files(server["data"])
    upload = f"/{server['token']}/upload?subject=eve&label=walk"
    for method, headers, body, status in (
        ("POST", {"Content-Type": "text/csv", "Content-Length": str(64 << 20)}, b"x" * 100, 413),
        ("POST", {"Content-Type": "text/csv", "Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n", 411),
        ("PUT", {"Content-Type": "text/csv", "Content-Length": "5"}, b"hello", 405),
        ("DELETE", {}, None, 405),
        ("OPTIONS", {}, None, 405),
    ):
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, context=server["context"], timeout=30)
        connection.putrequest(method, upload, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        assert connection.getresponse().status == status, method
        connection.close()
    assert _files(server["data"]) == before


def test_uploads_never_overwrite_and_a_second_writer_is_refused(server: dict) -> None:
    body = "\n".join([HEADER, *_rows(label="jump")]).encode()
    saved = [json.loads(request(server, f"/{server['token']}/upload?subject=dave&label=jump", "POST", body)[1])["saved"]
             for _ in range(3)]  # fmt: skip
    assert len(set(saved)) == 3 and all((server["data"] / s).read_bytes() == body for s in saved)
    assert (server["data"] / "carol" / "notes.txt").read_text() == "not harlite's"
    second = subprocess.run([sys.executable, "-m", "harlite", "serve", str(RELEASED), "--data", str(server["data"]),
                             "--port", "0"], capture_output=True, text=True, env=server["env"], timeout=120)  # fmt: skip
    assert second.returncode == 2 and "being written by another harlite process" in second.stderr
    assert second.stdout == ""  # no URL: it never served
    time.sleep(0.1)

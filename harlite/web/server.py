"""The HTTPS server of ``harlite serve``: the web export's files and recordings uploaded into a dataset.

Every request must carry the run's random token as the first segment of its path
(``https://HOST:PORT/<token>/...``; the page's relative URLs carry it by themselves); anything else is
403. Only GET and HEAD of the export's own files (no listing) and, with a data folder, POST of a recording
(``upload?subject=S&label=L``, the dataset CSV, size-capped, at the model's rate, labels and subject by
the rule datasets use) and of a small status beat are served; other methods get 405. A recording is
checked whole before anything is written, then written by the writer of ``harlite capture`` into
``DATA/<subject>/<label>-<time>.csv`` (a temporary file linked into place, never over a file) and read
back by ``read_csv``; bad input gets a 4xx and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import mimetypes
import shutil
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from harlite.core.protocol import check_label
from harlite.data.datasets import check_subject
from harlite.data.recording_files import write_recording
from harlite.data.recordings import RATE_TOLERANCE, RecordingError, read_csv
from harlite.errors import HarliteError

UPLOAD_MAX_BYTES = 16 << 20  # about an hour of 50 Hz samples from six sensors
STATUS_MAX_BYTES = 512
REQUEST_TIMEOUT_S = 15.0
LINGER_S, LINGER_BYTES = 0.5, 1 << 20  # after the answer: read what a refused client still sends
ACTIVE_S = 10.0  # a phone heard from within this many seconds counts as connected
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
         ".html": "text/html; charset=utf-8", ".css": "text/css"}  # fmt: skip


class Refused(Exception):
    """A request that gets a 4xx: the status and a one-line reason for the page."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Site:
    """What the server serves: the export's files (name -> bytes), the token, where recordings go."""

    token: str
    files: dict[str, bytes]
    rate_hz: float
    raw_channels: tuple[str, ...]
    data: Path | None = None


@dataclass
class Status:
    """What the terminal shows, updated by the request threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: dict[str, float] = field(default_factory=dict)  # client address -> last request (monotonic)
    rates: dict[str, float] = field(default_factory=dict)  # client address -> samples/s it reported
    activity: str = ""
    saved: list[str] = field(default_factory=list)
    refused: int = 0

    def heard(self, client: str) -> None:
        with self.lock:
            self.seen[client] = time.monotonic()

    def line(self) -> str:
        with self.lock:
            now = time.monotonic()
            active = [c for c, t in self.seen.items() if now - t <= ACTIVE_S]
            rate = sum(self.rates.get(c, 0.0) for c in active)
            parts = [f"phones {len(active)}", f"{rate:.0f} samples/s", f"{len(self.saved)} recordings saved"]
            if self.activity and active:
                parts.insert(2, self.activity)
            if self.refused:
                parts.append(f"{self.refused} requests refused")
        return " · ".join(parts)


def check_recording(text: str, site: Site) -> int:
    """Refuse (400) a recording that is not the dataset CSV at the model's rate; returns its samples."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    expected = ",".join(("time_s", *site.raw_channels, "label"))
    if not lines or lines[0].strip() != expected:
        raise Refused(400, f"the first line must be {expected}")
    rows = lines[1:]
    if len(rows) < 2:
        raise Refused(400, "a recording needs at least two samples")
    n_fields = len(site.raw_channels) + 2
    times = []
    for number, line in enumerate(rows, start=2):
        fields = line.rstrip("\r").split(",")
        if len(fields) != n_fields:
            raise Refused(400, f"line {number}: {len(fields)} fields, the header names {n_fields}")
        try:
            values = [float(v) for v in fields[:-1]]
        except ValueError:
            raise Refused(400, f"line {number}: a value is not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise Refused(400, f"line {number}: a value is not a finite number")
        if fields[-1]:
            try:
                check_label(fields[-1])
            except HarliteError as e:
                raise Refused(400, f"line {number}: {e}") from None
        times.append(values[0])
    if any(b <= a for a, b in zip(times, times[1:])):
        raise Refused(400, "time_s must increase from row to row")
    rate = (len(times) - 1) / (times[-1] - times[0])
    if abs(rate / site.rate_hz - 1.0) > RATE_TOLERANCE:
        raise Refused(400, f"the samples come at {rate:.4g} Hz; the model's rate is {site.rate_hz:g} Hz")
    return len(rows)


def save_recording(site: Site, subject: str, label: str, text: str) -> str:
    """Check and write one uploaded recording; returns its path inside the data folder."""
    assert site.data is not None
    try:
        subject, label = check_subject(subject), check_label(label)
    except HarliteError as e:
        raise Refused(400, str(e)) from None
    check_recording(text, site)
    folder = site.data / subject
    made = not folder.exists()
    if not made and (folder.is_symlink() or not folder.is_dir() or folder.resolve().parent != site.data.resolve()):
        raise Refused(403, f"subject {subject!r} is not a folder of the dataset")
    try:
        path = write_recording(folder, label, text.encode("utf-8"), check=read_csv)
    except RecordingError as e:
        if made:
            shutil.rmtree(folder, ignore_errors=True)  # the folder held only the refused file
        reason = str(e).split(": ", 1)[-1]  # without the temporary file's path
        raise Refused(400, f"recording refused: {reason}") from None
    return path.relative_to(site.data).as_posix()


def make_handler(site: Site, status: Status) -> type[BaseHTTPRequestHandler]:
    """The request handler class of one serving run."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "harlite"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # the status line says what matters
            pass

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # http.server answers 501 to methods it has no do_X for: harlite says 405 (no other method).
            if code == 501:
                code, message = 405, "only GET, HEAD and POST"
                self._drain()
            self._answer(code, {"error": message or self.responses.get(code, ("",))[0]})

        def _drain(self) -> None:
            """Read a body that is refused unread: a socket closed on unread data resets the connection,
            and the client would lose the answer."""
            length = self.headers.get("Content-Length", "") if self.headers else ""
            if length.isdigit() and 0 < int(length) <= UPLOAD_MAX_BYTES:
                self.rfile.read(int(length))

        def _answer(self, code: int, body: dict[str, Any] | bytes | None, kind: str = "application/json") -> None:
            data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
            if code >= 400:
                with status.lock:
                    status.refused += 1
                self.close_connection = True
            self.send_response(code)
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            if code == 405:
                self.send_header("Allow", "GET, HEAD, POST")
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _route(self) -> tuple[str, dict[str, list[str]]]:
            """The file name after the token, and the query; Refused(403) without the token."""
            parts = urlsplit(self.path)
            segments = parts.path.split("/", 2)  # '', token, rest
            given = segments[1] if len(segments) > 1 else ""
            if not hmac.compare_digest(given.encode(), site.token.encode()):
                raise Refused(403, "forbidden")
            status.heard(self.client_address[0])
            if len(segments) == 2:
                raise Refused(404, "open the URL harlite serve printed, with its final /")
            try:
                query = parse_qs(parts.query, strict_parsing=bool(parts.query), max_num_fields=4)
            except ValueError:
                raise Refused(400, "malformed query") from None
            return segments[2] or "index.html", query

        def _serve(self, method: Any) -> None:
            self.body_read = False
            try:
                method()
            except Refused as e:
                if not self.body_read:
                    self._drain()
                self._answer(e.status, {"error": str(e)})

        def do_GET(self) -> None:
            self._serve(self._get)

        def do_HEAD(self) -> None:
            self._serve(self._get)

        def do_POST(self) -> None:
            self._serve(self._post)

        def _get(self) -> None:
            name, _ = self._route()
            if name not in site.files:
                raise Refused(404, "not found")
            self._answer(
                200,
                site.files[name],
                TYPES.get(Path(name).suffix, mimetypes.guess_type(name)[0] or "application/octet-stream"),
            )

        def _body(self, kinds: tuple[str, ...], cap: int) -> bytes:
            kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind not in kinds:
                raise Refused(415, f"send {kinds[0]}")
            if self.headers.get("Transfer-Encoding"):
                raise Refused(411, "send a Content-Length, not chunks")
            length = self.headers.get("Content-Length", "")
            if not length.isdigit():
                raise Refused(411, "a Content-Length is required")
            if int(length) > cap:
                raise Refused(413, f"at most {cap} bytes")
            data = self.rfile.read(int(length))
            self.body_read = True
            if len(data) != int(length):
                raise Refused(400, "the body ended early")
            return data

        def _post(self) -> None:
            name, query = self._route()
            if name == "status":
                beat = self._body(("application/json",), STATUS_MAX_BYTES)
                try:
                    report = json.loads(beat)
                    rate = float(report.get("samples_per_s", 0.0))
                    activity = str(report.get("activity", ""))[:40]
                except (ValueError, AttributeError, TypeError):
                    raise Refused(400, "malformed status") from None
                with status.lock:
                    status.rates[self.client_address[0]] = rate if math.isfinite(rate) and 0 <= rate < 1e5 else 0.0
                    status.activity = activity if activity.isprintable() else ""
                self._answer(204, None)
                return
            if name != "upload" or site.data is None:
                raise Refused(404, "not found" if name != "upload" else "this server takes no recordings (no --data)")
            if sorted(query) != ["label", "subject"] or any(len(v) != 1 for v in query.values()):
                raise Refused(400, "upload?subject=S&label=L, one of each")
            try:
                text = self._body(("text/csv",), UPLOAD_MAX_BYTES).decode("utf-8")
            except UnicodeDecodeError:
                raise Refused(400, "the recording is not UTF-8 text") from None
            saved = save_recording(site, query["subject"][0], query["label"][0], text)
            with status.lock:
                status.saved.append(saved)
            self._answer(201, {"saved": saved})

    return Handler


class HttpsServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections speak TLS, the handshake in each connection's thread."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(REQUEST_TIMEOUT_S)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # not TLS, or a client that gave up: nothing to answer
        try:
            self.RequestHandlerClass(tls, client_address, self)
            _linger(tls)
        except (ssl.SSLError, OSError):
            pass
        finally:
            tls.close()


def _linger(tls: ssl.SSLSocket) -> None:
    """Read (briefly, boundedly) what a refused client still sends before closing: a socket closed on
    unread data resets the connection, and the client would lose the answer."""
    tls.settimeout(LINGER_S)
    with contextlib.suppress(OSError, ssl.SSLError):
        for _ in range(LINGER_BYTES // 65536):
            if not tls.recv(65536):
                break

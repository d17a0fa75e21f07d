"""``harlite serve``: a bundle's web page for a phone on the same network, and its recordings as a dataset.

The page is the bundle's web export (``harlite export --format web``), served from memory over HTTPS
with a self-signed certificate kept in harlite's cache folder (browsers give motion sensors only to
secure pages). The URL carries a random token; the first line on stdout is that URL, then its QR code.
The server binds to loopback unless ``host`` says otherwise. With ``data``, recordings made on the phone
are written into that folder as a dataset (held locked for the whole run), ready for
``harlite build --data``. A status line (phones, samples/s, recordings saved) goes to ``status``.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import secrets
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from harlite.errors import HarliteError
from harlite.io.cache import cache_dir
from harlite.io.locks import folder_lock
from harlite.web.certificate import server_certificate
from harlite.web.export import web_files
from harlite.web.server import HttpsServer, Site, Status, make_handler

DEFAULT_PORT = 8443
LOOPBACK = "127.0.0.1"


def lan_address() -> str | None:
    """This computer's address on its local network (the one a default route leaves by), if any."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the kernel only picks a route
        address = probe.getsockname()[0]
        if not ipaddress.ip_address(address).is_loopback:
            return address
    return None


def url_host(host: str) -> str:
    """The address a phone types for a server bound to ``host``."""
    if host in ("0.0.0.0", "::", ""):
        return lan_address() or LOOPBACK
    return f"[{host}]" if ":" in host else host


def qr_text(url: str) -> str:
    """The URL as a QR code of block characters, for the terminal."""
    import segno

    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()


def serve(
    bundle: Any,
    data: str | Path | None = None,
    host: str = LOOPBACK,
    port: int = DEFAULT_PORT,
    out: TextIO = sys.stdout,
    status: TextIO = sys.stderr,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Serve ``bundle``'s page until ``stop`` is set or Ctrl-C; returns what was saved.

    ``bundle`` is a verified Bundle. Raises HarliteError when the port is taken, the data folder is
    held by another harlite, or the web export cannot be built.
    """
    files = {**web_files(bundle), "serve.json": b'{"status": "status"}'}  # the page reports its samples/s
    token = secrets.token_urlsafe(16)
    spec = bundle.frontend()
    with contextlib.ExitStack() as stack:
        folder = None
        if data is not None:
            folder = Path(data).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            stack.enter_context(folder_lock(folder))
            files["serve.json"] = b'{"upload": "upload", "status": "status"}'
        site = Site(token, files, float(spec.rate_hz), tuple(spec.raw_channels), folder)
        state = Status()
        shown = url_host(host)
        cert = server_certificate(cache_dir() / "serve", [shown.strip("[]")])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert.cert, cert.key)
        try:
            server = HttpsServer((host, port), make_handler(site, state), context)
        except OSError as e:
            raise HarliteError(
                f"cannot listen on {host}:{port} ({e.strerror}): choose another --port or --host."
            ) from None
        stack.callback(server.server_close)
        url = f"https://{shown}:{server.server_address[1]}/{token}/"
        print(url, file=out, flush=True)
        print(qr_text(url), file=out, flush=True)
        _who_can_reach(host, status)
        if on_ready is not None:
            on_ready(url)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        stop = stop or threading.Event()
        tty = status.isatty()
        try:
            while not stop.wait(1.0 if tty else 10.0):
                line = state.line()
                print(f"\r{line}\033[K" if tty else line, end="" if tty else "\n", file=status, flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            thread.join(5)
        if tty:
            print(file=status)
        where = f" in {folder}" if folder else ""
        print(f"stopped: {len(state.saved)} recording(s) saved{where}", file=status, flush=True)
        return {"url": url, "saved": list(state.saved), "data": str(folder) if folder else None}


def _who_can_reach(host: str, status: TextIO) -> None:
    if _is_loopback(host):
        print("only this computer can open this page (loopback); for a phone on your network add --host 0.0.0.0",
              file=status)  # fmt: skip
    else:
        print(f"listening on {host}: anyone on your networks who has the URL, token included, can open the page "
              "and send recordings; the phone's browser will warn about the self-signed certificate once",
              file=status)  # fmt: skip


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

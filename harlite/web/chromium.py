"""Headless Chromium for the web bench and the tests: the DevTools protocol over --remote-debugging-pipe, no
packages.

Chromium reads protocol messages (JSON, each ended by a NUL byte) on its fd 3 and writes on fd 4. A bash
trampoline moves two pipe ends there (subprocess closes what a preexec_fn duplicates, and dash refuses fd
numbers over 9). ``Browser`` starts Debian's chromium with a fresh profile and no network beyond the
pages it is sent to (``loopback_site`` serves a folder to it); ``Page.eval`` runs JavaScript in a page and
returns its (awaited) value. Every wait is bounded (``timeout``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harlite.errors import ToolMissing

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--remote-debugging-pipe")  # fmt: skip


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        """No line on stderr per request."""


@contextlib.contextmanager
def loopback_site(folder: str | Path) -> Iterator[str]:
    """``folder`` served over HTTP on 127.0.0.1 (a secure context for the browser), in a thread, while the
    block runs; yields the base URL (``http://127.0.0.1:PORT``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def executable() -> str:
    """Debian's chromium, or $HARLITE_CHROMIUM; ToolMissing (with the fix) when there is none."""
    name = os.environ.get("HARLITE_CHROMIUM", "chromium")
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} not found: apt-get install chromium (or set HARLITE_CHROMIUM to a Chromium or "
                          "Chrome executable).")  # fmt: skip
    return found


class Browser:
    """One headless Chromium; close() ends it and removes its profile."""

    def __init__(self, *flags: str, timeout: float = 60.0) -> None:
        chromium = executable()
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="harlite-chromium-")
        commands, self._to_chrome = os.pipe()
        self._from_chrome, replies = os.pipe()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (commands, replies)]
        os.close(commands)
        os.close(replies)
        argv = [chromium, *FLAGS, f"--user-data-dir={self.profile}", *flags, "about:blank"]
        trampoline = f'exec 3<&{high[0]} 4>&{high[1]} {high[0]}<&- {high[1]}>&-; exec "$@"'
        self.process = subprocess.Popen(["bash", "-c", trampoline, "bash", *argv], pass_fds=high,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)  # fmt: skip
        for fd in high:
            os.close(fd)
        self._next_id = 0
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_chrome, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                waiter = self._waiting.pop(message.get("id", -1), None)
                (waiter or self.events).put(message)
        for waiter in list(self._waiting.values()):
            waiter.put({"error": {"message": "chromium exited"}})

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
        """Send one protocol command and wait for its result; RuntimeError on a protocol error."""
        with self._lock:
            self._next_id += 1
            number = self._next_id
            waiter = self._waiting[number] = queue.Queue()
        message = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        reply = waiter.get(timeout=timeout or self.timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]

    def page(self, url: str, before: list[tuple[str, dict[str, Any]]] = ()) -> Page:
        """A new tab that runs the commands ``before`` (e.g. sensor overrides) and then opens ``url``."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method, params in before:
            self.send(method, params, session)
        return Page(self, session, url)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def version(self) -> str:
        """The browser's product and version, e.g. ``Chrome/156.0.8078.114``."""
        return str(self.send("Browser.getVersion")["product"])

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, queue.Empty, OSError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab of a Browser."""

    def __init__(self, browser: Browser, session: str, url: str) -> None:
        self.browser, self.session = browser, session
        self.send("Runtime.enable")
        self.send("Page.navigate", {"url": url})

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, self.session, timeout)

    def eval(self, expression: str, timeout: float = 120.0, gesture: bool = False) -> Any:
        """The value of a JavaScript expression (promises awaited); RuntimeError if it throws."""
        reply = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True,
                                               "userGesture": gesture}, timeout)  # fmt: skip
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return reply["result"].get("value")

    def wait(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll until ``expression`` is truthy; returns its value."""
        end = time.monotonic() + timeout
        while True:
            try:
                value = self.eval(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > end:
                raise TimeoutError(f"still false after {timeout:g} s: {expression}")
            time.sleep(0.05)

"""A resumable run folder whose stages cannot go stale, and a lock so that one process writes a folder.

``RunFolder(root, total)`` runs stages in order; ``stage(name, params, outputs, run, inputs=(), code=None)``
calls ``run()`` unless the stage's previous run into ``root`` can be kept. A stage is kept only if

- its key is unchanged: the sha256 of the previous stage's key and output hashes, the stage's name, its
  ``params`` (JSON), the code identity (``code_identity()``: harlite's version, the front end's
  ``IMPLEMENTATION``, the data parsers' ``PARSER_VERSION``; plus the stage's own ``code``) and the
  content hashes of its ``inputs`` (files or folders, absolute or relative to ``root``); and
- every one of its ``outputs`` (paths relative to ``root``; a folder means every file under it) still
  hashes as recorded in ``root/.stages/<name>.json``.

Otherwise the stage is redone, and so is every stage after it (the progress line says why). Output
hashes enter the next stage's key, so a stage redone with different bytes can never leave a later
stage computed from the old ones, even across an interrupted run.

``RunFolder`` holds ``harlite.io.locks.FolderLock`` on ``root`` while it runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import pkgutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import harlite
import harlite.data
from harlite.core import frontend
from harlite.errors import HarliteError
from harlite.io.files import read_json, write_json
from harlite.io.hashing import sha256_file
from harlite.io.locks import LOCK_FILE, FolderLock

RECORDS = ".stages"


def code_identity() -> dict[str, Any]:
    """What identifies the code that makes every stage's outputs: harlite's version, the front end's
    ``IMPLEMENTATION`` and the ``PARSER_VERSION`` of every ``harlite.data`` module that defines one (bump
    one to invalidate old runs; a new parser module is included by defining the constant)."""
    parsers = {}
    for module in pkgutil.iter_modules(harlite.data.__path__):
        version = getattr(importlib.import_module(f"harlite.data.{module.name}"), "PARSER_VERSION", None)
        if version is not None:
            parsers[module.name] = version
    return {"harlite": harlite.__version__, "frontend": frontend.IMPLEMENTATION, "parsers": parsers}


def content_digest(path: Path) -> Any:
    """sha256 of a file, ``{relative name: sha256}`` of every file under a folder (symlinks as their
    target text; lock files left out, their content changes with every writer), or None when ``path``
    does not exist."""
    if path.is_symlink() and not path.exists():
        return {"link": os.readlink(path)}
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        files = {}
        for sub in sorted(path.rglob("*")):
            name = sub.relative_to(path).as_posix()
            if sub.name == LOCK_FILE:
                continue
            if sub.is_symlink():
                files[name] = {"link": os.readlink(sub)}
            elif sub.is_file():
                files[name] = sha256_file(sub)
        return files
    return None


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class RunFolder:
    """Runs stages in order inside ``root``; a stage whose key and outputs are unchanged is kept (see the
    module docstring). Holds ``folder_lock(root)`` until ``close()`` (or the end of a ``with`` block)."""

    def __init__(self, root: str | Path, total: int, code: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.total = total
        self.code = code_identity() if code is None else code
        self._lock = FolderLock(self.root)
        self._lock.acquire()
        self._done = 0
        self._chain = ""
        self._redone = ""  # the first stage redone in this run: every later one is redone too
        self.results: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the folder's lock."""
        self._lock.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def stage(
        self,
        name: str,
        params: dict[str, Any],
        outputs: list[str],
        run: Callable[[], Any],
        inputs: Iterable[str | Path] = (),
        code: Any = None,
        announce: Callable[[bool], Any] | None = None,
    ) -> Any:
        """Run ``run()`` (its result must be JSON) unless the stage can be kept; returns the result.
        ``announce(redo)`` hears the decision first (the workers of a cluster follow the chief's)."""
        self._done += 1
        prefix = f"[{self._done}/{self.total}] {name}"
        parts = {
            "params": _digest(params),
            "code": {**self.code, "stage": code},
            "inputs": {str(p): content_digest(self._path(p)) for p in inputs},
        }
        key = _digest(self._chain, name, parts)
        record_path = self.root / RECORDS / f"{name}.json"
        previous = _read_record(record_path)
        reason = self._stale(previous, key, parts, outputs)
        if announce is not None:
            announce(reason is not None)
        if reason is None:
            print(f"{prefix}: unchanged, kept ({previous['seconds']:.0f} s before)", file=sys.stderr)
            result, seconds, hashes = previous["result"], previous["seconds"], previous["outputs"]
        else:
            print(f"{prefix}..." + (f" ({reason})" if previous is not None else ""), file=sys.stderr)
            self._redone = self._redone or name
            start = time.perf_counter()
            result = run()
            seconds = time.perf_counter() - start
            hashes = {o: content_digest(self.root / o) for o in outputs}
            missing = [o for o, h in hashes.items() if h is None]
            if missing:
                raise HarliteError(f"stage {name} did not write {', '.join(missing)} in {self.root}.")
            write_json(record_path, {"key": key, **parts, "outputs": hashes, "seconds": seconds, "result": result})
            print(f"{prefix}: done in {seconds:.0f} s", file=sys.stderr)
        self._chain = _digest(key, hashes)
        self.results[name] = result
        self.timings[name] = seconds
        return result

    def _path(self, path: str | Path) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.root / path

    def _stale(
        self, previous: dict[str, Any] | None, key: str, parts: dict[str, Any], outputs: list[str]
    ) -> str | None:
        """Why the stage must be redone, or None to keep it."""
        if previous is None:
            return "not run before"
        if self._redone:
            return f"{self._redone} was redone"
        if previous.get("key") != key:
            changed = [what for what in ("params", "code", "inputs") if previous.get(what) != parts[what]]
            return f"{' and '.join(changed)} changed" if changed else "an earlier stage changed"
        recorded = previous.get("outputs")
        if not isinstance(recorded, dict) or sorted(recorded) != sorted(outputs):
            return "its outputs changed"
        for output in outputs:
            now = content_digest(self.root / output)
            if now is None:
                return f"{output} is missing"
            if now != recorded[output]:
                return f"{output} was altered"
        return None


def _read_record(path: Path) -> dict[str, Any] | None:
    """A stage record, or None when it is missing or unreadable (the stage is then redone)."""
    try:
        record = read_json(path)
    except (OSError, HarliteError):
        return None
    needed = ("key", "outputs", "seconds", "result")
    return record if isinstance(record, dict) and all(k in record for k in needed) else None

"""A resumable run folder: each stage records a digest of its inputs and is skipped when unchanged."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harlite.manifest import read_json, write_json


class RunFolder:
    """Runs stages in order inside ``root``; a stage whose inputs and outputs are unchanged is not redone.

    A stage's digest covers its own parameters and the digests of the stages before it, so changing an
    early stage redoes everything after it.
    """

    def __init__(self, root: str | Path, total: int) -> None:
        self.root = Path(root)
        self.total = total
        self._done = 0
        self._chain = ""
        self.results: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    def stage(self, name: str, params: dict[str, Any], outputs: list[str], run: Callable[[], Any]) -> Any:
        """Run ``run()`` unless a previous run with the same inputs left all ``outputs`` (relative paths)."""
        self._done += 1
        digest = hashlib.sha256(json.dumps([self._chain, name, params], sort_keys=True, default=str).encode())
        self._chain = digest.hexdigest()[:16]
        record = self.root / ".stages" / f"{name}.json"
        prefix = f"[{self._done}/{self.total}] {name}"
        if record.exists() and all((self.root / o).exists() for o in outputs):
            previous = read_json(record)
            if previous.get("digest") == self._chain:
                print(f"{prefix}: unchanged, kept ({previous['seconds']:.0f} s before)", file=sys.stderr)
                self.results[name] = previous["result"]
                self.timings[name] = previous["seconds"]
                return previous["result"]
        print(f"{prefix}...", file=sys.stderr)
        start = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - start
        write_json(record, {"digest": self._chain, "seconds": seconds, "result": result})
        print(f"{prefix}: done in {seconds:.0f} s", file=sys.stderr)
        self.results[name] = result
        self.timings[name] = seconds
        return result

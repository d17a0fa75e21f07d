"""The benchmark behind ``harlite bench``: every stage's figures in one JSON."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SECTIONS = ("data", "train", "bundle", "simulate", "firmware")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_data() -> dict[str, Any]:
    """Cold (empty cache: unpickle, parse, filter, window) and warm (cached) load of the HAPT windows."""
    from harlite.windows import load_windows

    previous = os.environ.get("HARLITE_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["HARLITE_CACHE"] = cache
        try:
            cold, windows = _timed(load_windows)
            warm, again = _timed(load_windows)
        finally:
            if previous is None:
                os.environ.pop("HARLITE_CACHE")
            else:
                os.environ["HARLITE_CACHE"] = previous
    assert np.array_equal(windows.y, again.y)
    train, _, test = windows.split()
    return {
        "cold_load_s": round(cold, 2),
        "warm_load_s": round(warm, 3),
        "windows": len(windows),
        "train_windows": len(train),
        "test_windows": len(test),
        "targets": {"cold_load_s": 60.0, "warm_load_s": 3.0},
        "pass": cold <= 60.0 and warm <= 3.0,
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr)


def run_bench(sections: tuple[str, ...] = SECTIONS, bundle: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Run the named sections and gather their figures with the machine they ran on."""
    result: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in sections:
        progress(f"{name}...")
        seconds, figures = _timed(lambda: _SECTION_RUNNERS[name](bundle=bundle, **options))
        figures["bench_seconds"] = round(seconds, 1)
        result[name] = figures
    return result


_SECTION_RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "data": lambda **_: bench_data(),
}


def format_table(figures: dict[str, Any]) -> str:
    """The scalar figures of each section as an aligned two-column table."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, (int, float, str, bool)) and not prefix.startswith("machine"):
            rows.append((prefix, f"{node:.4g}" if isinstance(node, float) else str(node)))

    walk("", {k: v for k, v in figures.items() if k not in ("machine", "date")})
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

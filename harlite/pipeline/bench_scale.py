"""``harlite bench scale``: what training costs as the data grows, with one worker and with two.

HAPT's recordings are exported once as a dataset folder (30 subjects, 61 recordings), then copied 4 and 16
times under new subject names (``<subject>x<k>``; hard links where the file system allows them). For each
size the windows are first cut into the window store (the cold pass, timed), then ``harlite train --epochs
1`` runs in a child process, alone and with ``--workers 2``. Recorded per run: the peak resident memory of
the largest process (``wait4``'s rusage: the training process, or the bigger of the two workers), the
training windows per second of that epoch (graph tracing included), whether the windows streamed, and the
growth of peak memory from 1x to the largest size (target: at most 1.3x). The copies put a subject's twins
on both sides of the split, so the runs' accuracy means nothing here; their memory and speed do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harlite.data.hapt import SUBJECTS, export_hapt
from harlite.data.windows import DataSpec, load_split
from harlite.io.cache import cache_at
from harlite.io.files import read_json

SIZES = (1, 4, 16)
WORKERS = (1, 2)
GROWTH_TARGET = 1.3


def make_datasets(work: Path, sizes: tuple[int, ...] = SIZES) -> dict[int, Path]:
    """``work/data/hapt<N>x`` for every size: HAPT as a dataset folder, copied under new subject names."""
    base = work / "data" / "hapt1x"
    if not (base / SUBJECTS[-1]).is_dir():
        shutil.rmtree(base, ignore_errors=True)
        export_hapt(SUBJECTS, base.with_name(".hapt1x.tmp"), as_dataset=True)
        base.with_name(".hapt1x.tmp").rename(base)
    folders = {1: base}
    for size in (s for s in sizes if s > 1):
        folder = work / "data" / f"hapt{size}x"
        if not (folder / f"{SUBJECTS[-1]}x{size - 1}").is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            for path in sorted(base.rglob("*.csv")):
                subject = path.parent.name
                for copy in range(size):
                    target = folder / (subject if copy == 0 else f"{subject}x{copy}") / path.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _link(path, target)
        folders[size] = folder
    return folders


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def train_run(folder: Path, out: Path, workers: int, env: dict[str, str]) -> dict[str, Any]:
    """``harlite train --epochs 1`` on ``folder`` in a child process: its peak memory and speed."""
    command = [sys.executable, "-m", "harlite", "train", "--data", str(folder), "--epochs", "1", "--out", str(out),
               "--force"] + (["--workers", str(workers)] if workers > 1 else [])  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.log", "wb") as log:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
    if child.returncode != 0:
        return {"failed": f"exit {child.returncode}; see {out.parent / (out.name + '.log')}"}
    metrics = read_json(out / "metrics.json")
    windows = metrics["split"]["windows"]["train"]["total"]
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "train_windows": windows,
        "train_seconds": round(metrics["train_seconds"], 1),
        "windows_per_s": round(windows / metrics["train_seconds"], 1),
        "command_seconds": round(seconds, 1),
        "input": metrics["input"]["mode"],
        "train_shards": metrics["input"]["train_shards"],
        "split_mb": round(metrics["input"]["split_bytes"] / 2**20, 1),
    }


def bench_scale(work: str | Path = "runs/bench-scale", sizes: tuple[int, ...] = SIZES,
                workers: tuple[int, ...] = WORKERS) -> dict[str, Any]:  # fmt: skip
    """Peak memory and windows per second of one training epoch at every size, for every worker count."""
    figures: dict[str, Any] = {"work": str(work), "sizes": {}}
    work = Path(work).resolve()
    env = {**os.environ, "HARLITE_CACHE": str(work / "cache")}
    env.pop("TF_CONFIG", None)
    with cache_at(env["HARLITE_CACHE"]):
        folders = make_datasets(work, sizes)
        for size in sizes:
            started = time.perf_counter()
            split = load_split(DataSpec(data=str(folders[size])))
            row: dict[str, Any] = {"recordings": sum(1 for _ in folders[size].rglob("*.csv")),
                                   "windows": len(split.pool) + len(split.test),
                                   "store_seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
            for n in workers:
                print(f"bench: scale {size}x, {n} worker{'s' * (n > 1)}...", file=sys.stderr)
                row[f"workers_{n}"] = train_run(folders[size], work / "runs" / f"{size}x_w{n}", n, env)
            figures["sizes"][f"{size}x"] = row
    first, last = f"{min(sizes)}x", f"{max(sizes)}x"
    for n in workers:
        runs = [figures["sizes"][s].get(f"workers_{n}", {}) for s in (first, last)]
        if all("peak_rss_mb" in r for r in runs):
            figures[f"peak_rss_growth_workers_{n}"] = round(runs[1]["peak_rss_mb"] / runs[0]["peak_rss_mb"], 3)
    growth = figures.get("peak_rss_growth_workers_1")
    figures["target_growth"] = GROWTH_TARGET
    figures["pass"] = growth is not None and growth <= GROWTH_TARGET
    return figures

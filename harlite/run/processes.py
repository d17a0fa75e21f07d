"""Work spread over processes on this machine: ``in_processes(function, items, jobs, setup)``.

Each worker process is started with ``spawn`` (a fresh interpreter: forking a process that has imported
TensorFlow can deadlock, measured: a fork after the Keras runtime had run hung until killed), runs
``setup()`` once (open a bundle, a runtime) and then ``function(item)`` for one item at a time, so a worker
holds one item's data at a time. Results come back in the items' order, so a parallel run gives exactly
what a serial one does. Starting a worker costs its imports (a few seconds; TensorFlow's more): worth it
for many recordings, not for a handful.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from harlite.errors import HarliteError

_STATE: dict[str, Any] = {}


def _start(setup: Callable[[], Any]) -> None:
    _STATE["setup"] = setup()


def _call(function: Callable[[Any, Any], Any], item: Any) -> Any:
    return function(_STATE["setup"], item)


def in_processes(function: Callable[[Any, Any], Any], items: Iterable[Any], jobs: int,
                 setup: Callable[[], Any]) -> list[Any]:  # fmt: skip
    """``[function(setup(), item) for item in items]``, over ``jobs`` worker processes (``setup`` runs once per
    worker; with ``jobs`` 1, here). ``function`` and ``setup`` must be picklable (module-level functions,
    ``functools.partial`` of them). A worker that dies (killed, out of memory) is a HarliteError."""
    items = list(items)
    jobs = max(1, min(jobs, len(items)))
    if jobs == 1:
        state = setup()
        return [function(state, item) for item in items]
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start, initargs=(setup,)) as pool:
            return list(pool.map(_call, [function] * len(items), items))
    except BrokenProcessPool:
        raise HarliteError(f"a worker process of --jobs {jobs} ended without finishing (killed, or out of memory); "
                           "run again, with fewer --jobs if memory ran short.") from None  # fmt: skip


def default_jobs() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

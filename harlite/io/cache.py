"""harlite's cache folder and the arrays kept in it (parsed data sets, windows, compiled engines)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harlite.io.files import atomic_write_bytes


def cache_dir() -> Path:
    """harlite's cache folder (parsed data sets, downloads): ``$HARLITE_CACHE`` or the user cache dir."""
    env = os.environ.get("HARLITE_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("harlite"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_arrays(prefix: str, identity: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``build()``'s arrays, kept as ``<cache>/<prefix>-<key>.npz`` where the key hashes ``identity``.

    ``identity`` must change whenever the result would (a source file's size and mtime, a parser version).
    """
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    path = cache_dir() / f"{prefix}-{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    arrays = build()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return arrays

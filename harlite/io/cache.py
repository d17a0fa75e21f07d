"""harlite's cache folder and the arrays kept in it (parsed data sets, windows, compiled engines).

A cache may be shared (``HARLITE_CACHE`` on a machine with other users): what harlite would execute from
it (a compiled library) lives only in ``private_folder``: a folder owned by this user that nobody else
can write, or else a temporary folder of this process.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from harlite.errors import HarliteError
from harlite.io.files import atomic_write_bytes
from harlite.io.limits import open_regular


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


@contextmanager
def cache_at(folder: str | Path) -> Iterator[Path]:
    """Use ``folder`` as harlite's cache (``HARLITE_CACHE``) inside the block, then the previous one again."""
    previous = os.environ.get("HARLITE_CACHE")
    os.environ["HARLITE_CACHE"] = str(folder)
    try:
        yield Path(folder)
    finally:
        if previous is None:
            os.environ.pop("HARLITE_CACHE", None)
        else:
            os.environ["HARLITE_CACHE"] = previous


def cached_arrays(prefix: str, identity: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``build()``'s arrays, kept as ``<cache>/<prefix>-<key>.npz`` where the key hashes ``identity``.

    ``identity`` must change whenever the result would (a source file's size and mtime, a parser version).
    """
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    path = cache_dir() / f"{prefix}-{key}.npz"
    if path.exists():
        try:
            with open_regular(path) as f, np.load(f, allow_pickle=False) as z:
                return {name: z[name] for name in z.files}
        except (HarliteError, OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # not a regular file, or damaged: built again and replaced
    arrays = build()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return arrays


def private_folder(name: str, cache: Path | None = None) -> Path:
    """``<cache>/<name>`` (created with mode 0700) when it is a real folder owned by this user that no one
    else may write; else a temporary folder of this process (0700, removed at exit), so that files
    someone else planted in a shared cache are never used."""
    folder = (cache or cache_dir()) / name
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if owned_and_private(os.lstat(folder), directory=True):
            return folder
    except OSError:
        pass
    return _process_folder(name)


def owned_and_private(st: os.stat_result, directory: bool = False) -> bool:
    """A regular file (or folder) owned by this user that neither group nor others may write."""
    kind = stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)
    return kind and st.st_uid == os.geteuid() and not st.st_mode & 0o022


_PROCESS_FOLDERS: dict[str, Path] = {}


def _process_folder(name: str) -> Path:
    if name not in _PROCESS_FOLDERS:
        path = Path(tempfile.mkdtemp(prefix=f"harlite-{name}-"))
        atexit.register(shutil.rmtree, path, True)
        _PROCESS_FOLDERS[name] = path
    return _PROCESS_FOLDERS[name]

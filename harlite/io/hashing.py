"""The one sha256 of a file, remembered per file state.

A file is hashed once per process per state (path, device, inode, size, mtime, ctime): replaying a
thousand windows does not re-hash the model a thousand times, and a file changed in between is hashed
again. ``remember``/``known`` let a reader that hashed the bytes it read itself share that memory.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from harlite.errors import BundleError, HarliteError
from harlite.io.limits import MiB, open_regular

FileState = tuple[str, int, int, int, int, int]
# file state -> sha256 of the bytes that state held
_KNOWN: dict[FileState, str] = {}


def file_state(path: Path, st: os.stat_result) -> FileState:
    """What identifies the bytes of ``path`` as long as nobody writes to it."""
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def known(state: FileState) -> str | None:
    """The sha256 remembered for a file state, if any."""
    return _KNOWN.get(state)


def remember(state: FileState, digest: str) -> None:
    """Remember that the file in ``state`` hashes to ``digest``."""
    _KNOWN[state] = digest


def sha256_file(path: str | Path, max_bytes: int | None = None, error: type[HarliteError] = BundleError) -> str:
    """Hex sha256 of a regular file of at most ``max_bytes`` (None: any size); ``error`` for anything else."""
    path = Path(path)
    with open_regular(path, error) as f:
        st = os.fstat(f.fileno())
        state = file_state(path, st)
        if state in _KNOWN:
            return _KNOWN[state]
        if max_bytes is not None and st.st_size > max_bytes:
            raise error(f"{path} is {st.st_size} bytes, more than the {max_bytes} harlite hashes.")
        digest = hashlib.sha256()
        while chunk := f.read(MiB):
            digest.update(chunk)
        if file_state(path, os.fstat(f.fileno())) == state:  # written to while hashed: remember nothing
            _KNOWN[state] = digest.hexdigest()
        return digest.hexdigest()

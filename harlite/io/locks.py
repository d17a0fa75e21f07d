"""One writer per folder: ``folder_lock(path)`` holds an exclusive ``fcntl.flock`` on ``path/.harlite.lock``
while a process writes into ``path``; a second process is refused at once with a clear error naming the
holder; the kernel releases the lock when the holder exits, however it exits. Within one process the
lock is reentrant.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from harlite.errors import HarliteError

LOCK_FILE = ".harlite.lock"

# resolved folder -> [open lock file descriptor, holders in this process]
_HELD: dict[str, list[int]] = {}


class FolderLock:
    """An exclusive, reentrant (within the process) lock on a folder: ``path/.harlite.lock``, flock'ed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._held = False

    def acquire(self) -> None:
        """Take the lock (making the folder); a HarliteError at once if another process holds it."""
        if self._held:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        if key in _HELD:
            _HELD[key][1] += 1
            self._held = True
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = (os.pread(fd, 200, 0).decode("utf-8", "replace").splitlines() or [""])[0].strip()
            os.close(fd)
            raise HarliteError(
                f"{self.path} is being written by another harlite process ({holder or 'pid unknown'}): wait "
                "for it to finish, or write to another folder (--out)."
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(['harlite', *sys.argv[1:]])[:150]}\n".encode(), 0)
        _HELD[key] = [fd, 1]
        self._held = True

    def release(self) -> None:
        """Give the lock back (the last holder in the process unlocks the file)."""
        if not self._held:
            return
        self._held = False
        key = str(self.path.resolve())
        entry = _HELD.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[key]
            os.close(entry[0])  # closing the descriptor releases the flock


@contextlib.contextmanager
def folder_lock(path: str | Path) -> Iterator[Path]:
    """Hold ``FolderLock(path)`` for the block (e.g. ``with folder_lock(out): write the results``)."""
    lock = FolderLock(path)
    lock.acquire()
    try:
        yield lock.path
    finally:
        lock.release()

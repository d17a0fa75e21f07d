"""The compilers, emulators and system tools the tests drive, required: ``scripts/test.sh`` installs them
(the Debian packages of .ci/apt-packages.txt), so a missing one fails its test, never skips it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SANITIZERS = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all"]


def tool(name: str) -> str:
    """The path of a compiler, emulator or system tool; the test fails without it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: run scripts/test.sh, which installs the Debian packages of "
                    ".ci/apt-packages.txt")  # fmt: skip
    return path


def run(
    cmd: list, cwd: Path | None = None, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False, env=env)  # fmt: skip


def compile_ok(cmd: list, cwd: Path | None = None, env: dict | None = None) -> str:
    """Run a compiler (or any tool) that must succeed; its stdout."""
    done = run(cmd, cwd=cwd, env=env)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout}{done.stderr}"
    return done.stdout

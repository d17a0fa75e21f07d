"""Real decompression bombs for the tests, built fast: one deflated 16 MiB block of zeros (about 1000:1)
repeated, wrapped as a zip member or a gzip file; and a subprocess runner that reports peak memory."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

BLOCK = 16 << 20
REPO = Path(__file__).resolve().parents[1]


def deflate_zeros(size: int, fill: bytes = b"\0") -> tuple[bytes, int]:
    """(raw deflate stream, CRC-32) of ``size`` zero bytes, or of ``fill`` bytes (``size`` a multiple of 16 MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros, crc = fill * BLOCK, 0
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)  # byte-aligned, no history
    for _ in range(size // BLOCK):
        crc = zlib.crc32(zeros, crc)
    return block * (size // BLOCK) + b"\x03\x00", crc  # b"\x03\x00": the final, empty block


def zip_bomb(path: Path, members: dict[str, int], declared: int | None = None) -> Path:
    """A zip whose members (name -> size of zeros) are deflated; ``declared`` overrides the uncompressed
    size every header states (a lying archive)."""
    local, central = bytearray(), bytearray()
    for name, size in members.items():
        data, crc = deflate_zeros(size)
        usize, raw_name = size if declared is None else declared, name.encode()
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), usize, len(raw_name), 0)
        local += raw_name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), usize,
                               len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name  # fmt: skip
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def gzip_bomb(path: Path, size: int, fill: bytes = b"\0", head: bytes = b"") -> Path:
    """A gzip file of ``size`` zero (or ``fill``) bytes, after a gzip member holding ``head`` if given."""
    data, crc = deflate_zeros(size, fill)
    first = gzip.compress(head, mtime=0) if head else b""
    member = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + data + struct.pack("<II", crc, size & 0xFFFFFFFF)
    path.write_bytes(first + member)
    return path


# Runs argv[1:] and reports it with its peak resident memory. Linux carries a process's peak RSS across
# execve, so a child started straight from the (large) test process would report the test's peak: this
# small launcher forks it instead and reads the child's own peak from RUSAGE_CHILDREN.
_LAUNCHER = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "peak_mib": peak}))
"""


def measure(argv: list[str], tree: Path = REPO, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``argv`` with the harlite of ``tree`` (this one by default) on PYTHONPATH and in the cwd, and
    ``env`` added to the environment: {"returncode", "stdout", "stderr", "peak_mib" (ru_maxrss)}."""
    env = {**os.environ, "PYTHONPATH": str(tree), **(env or {})}
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=180, check=True)  # fmt: skip
    return json.loads(done.stdout)


def peak_memory(code: str, tree: Path = REPO) -> dict[str, object]:
    """Run ``code`` in a fresh Python: {"error": the HarliteError message or None, "peak_mib"}."""
    script = (
        "import json\n"
        "from harlite.errors import HarliteError\n"
        "error = None\n"
        "try:\n" + "".join(f"    {line}\n" for line in code.splitlines()) +
        "except HarliteError as e:\n    error = str(e)\n"
        "print(json.dumps(error))\n"
    )  # fmt: skip
    run = measure([sys.executable, "-c", script], tree)
    assert run["returncode"] == 0, str(run["stderr"])[-2000:]
    return {"error": json.loads(str(run["stdout"]).strip().splitlines()[-1]), "peak_mib": run["peak_mib"]}

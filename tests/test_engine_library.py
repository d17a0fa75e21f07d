"""The C engine's compiled library in the cache (issue 22): a library someone planted or altered there is
never loaded; a cache folder others may write is not used for it."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harlite.bundle.loader import load_bundle
from harlite.io.cache import owned_and_private
from harlite.run.host_engine import HostEngine, build_library

RELEASED = Path(__file__).resolve().parents[1] / "models" / "cnn_lstm"
PLANTED = """
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {{
    FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("ran", f); fclose(f); }}
}}
int harlite_engine_invoke(const void *in, void *out) {{ return 0; }}
"""


@pytest.fixture(scope="module")
def model() -> bytes:
    return load_bundle(RELEASED).read("int8")


def plant(lib: Path, marker: Path, with_record: bool) -> None:
    """Replace ``lib`` with one that writes ``marker`` when loaded (and, ``with_record``, its sha256 beside it)."""
    source = lib.with_suffix(".c")
    source.write_text(PLANTED.format(marker=marker))
    built = lib.with_suffix(".new")
    subprocess.run(["gcc", "-shared", "-fPIC", str(source), "-o", str(built)], check=True)
    os.replace(built, lib)  # a new file in its place (the old one may still be mapped in this process)
    source.unlink()
    if with_record:
        import hashlib

        lib.with_name(lib.name + ".sha256").write_text(hashlib.sha256(lib.read_bytes()).hexdigest() + "\n")


def window(engine: HostEngine) -> np.ndarray:
    return np.random.default_rng(0).integers(-128, 128, (engine.window, engine.channels), dtype=np.int8)


@pytest.mark.parametrize("with_record", [False, True])
def test_a_library_planted_in_the_cache_is_never_loaded(model: bytes, tmp_path: Path, with_record: bool) -> None:
    cache = tmp_path / "cache"
    good = HostEngine(model, cache=cache)
    expected = good.invoke_int8(window(good))
    marker = tmp_path / "pwned"
    plant(good.library, marker, with_record)
    if with_record:  # the record planted too: the library is this user's, so the hash alone cannot tell...
        os.chmod(good.library, 0o777)  # ...but a file others may write is refused
    engine = HostEngine(model, cache=cache)
    assert not marker.exists()
    np.testing.assert_array_equal(engine.invoke_int8(window(engine)), expected)


def test_an_altered_library_is_compiled_again(model: bytes, tmp_path: Path) -> None:
    engine = HostEngine(model, cache=tmp_path)
    data = bytearray(engine.library.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered = engine.library.with_suffix(".new")
    altered.write_bytes(bytes(data))
    os.replace(altered, engine.library)
    again = HostEngine(model, cache=tmp_path)
    np.testing.assert_array_equal(again.invoke_int8(window(again)), engine.invoke_int8(window(engine)))


def test_a_shared_cache_folder_is_not_used_for_libraries(model: bytes, tmp_path: Path) -> None:
    (tmp_path / "engine").mkdir(mode=0o777)
    os.chmod(tmp_path / "engine", 0o777)
    lib = build_library(HostEngine(model, cache=tmp_path).engine.files, cache=tmp_path)
    assert tmp_path not in lib.parents and stat.S_IMODE(lib.parent.stat().st_mode) == 0o700
    assert not list((tmp_path / "engine").iterdir())


def test_owner_and_mode_checks() -> None:
    mine = os.stat_result((stat.S_IFREG | 0o700, 0, 0, 1, os.geteuid(), 0, 0, 0, 0, 0))
    assert owned_and_private(mine)
    assert not owned_and_private(os.stat_result((stat.S_IFREG | 0o720, 0, 0, 1, os.geteuid(), 0, 0, 0, 0, 0)))
    assert not owned_and_private(os.stat_result((stat.S_IFREG | 0o700, 0, 0, 1, os.geteuid() + 1, 0, 0, 0, 0, 0)))
    assert not owned_and_private(os.stat_result((stat.S_IFLNK | 0o700, 0, 0, 1, os.geteuid(), 0, 0, 0, 0, 0)))

"""The package as ``pip install .`` installs it (not editable): every C file, linker script and template the
board, the engine and the web export read is inside the wheel, and an installed harlite, run from an empty
folder, exports the released model as a CMake library made of its own files (tests/test_export.py builds one)
and measures the firmware on the five cores (``harlite bench firmware --json``) as the repository's code does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fixtures_firmware import RELEASED, REPO
from tools import compile_ok, run

DATA_DIRS = ("harlite/board/c", "harlite/board/qemu", "harlite/board/tflm", "harlite/board/templates",
             "harlite/engine/c", "harlite/web/assets")  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """harlite's wheel, built from a copy of the sources (the build writes beside them)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copy(REPO / "README.md", src)
    shutil.copytree(REPO / "harlite", src / "harlite", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    compile_ok([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, src])
    return next(out.glob("harlite-*.whl"))


def test_the_wheel_holds_every_package_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {p.relative_to(REPO).as_posix() for d in DATA_DIRS for p in (REPO / d).rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    assert len(wanted) > 30 and wanted <= names, sorted(wanted - names)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> dict:
    """A new venv with the wheel installed (harlite's dependencies from the system's site-packages), and the
    environment to run it in: no PYTHONPATH, the session's cache (parsed HAPT)."""
    venv = tmp_path_factory.mktemp("venv")
    compile_ok([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv])  # pip: the system's
    compile_ok([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", wheel])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {"venv": venv, "env": {**env, "HARLITE_CACHE": str(_session_cache)}}


def test_an_installed_harlite_exports_from_an_empty_folder(installed: dict, tmp_path: Path) -> None:
    venv, env = installed["venv"], installed["env"]
    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run([venv / "bin" / "python", "-c", "import harlite.board.sources as s; print(s.C_DIR)"],
                           cwd=empty, env=env, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(REPO)
    compile_ok([venv / "bin" / "harlite", "export", RELEASED, "--format", "cmake", "--out", "lib"], cwd=empty, env=env)
    for name in ("harlite.h", "harlite.c", "harlite_core.c", "harlite_pipeline.c"):  # from the installed package
        assert (empty / "lib" / "src" / name).read_text().split("\n", 1)[1] == (
            REPO / "harlite/board/c" / name
        ).read_text()
    assert {"CMakeLists.txt", "cmake", "zephyr", "examples", "README.md"} <= {p.name for p in (empty / "lib").iterdir()}


def test_an_installed_harlite_benches_the_firmware_from_an_empty_folder(installed: dict, core_runs: dict,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    """``harlite bench firmware --json`` of the installed package prints the figures on stdout, writes nothing,
    and measures every core as the repository's code does on the same six minutes of HAPT subject 2."""
    done = run([installed["venv"] / "bin" / "harlite", "bench", "firmware", "--json", "--bundle", RELEASED],
               cwd=tmp_path, env=installed["env"], timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)["firmware"]
    assert list(tmp_path.iterdir()) == [] and figures["limits"]["pass"]
    keys = ("samples", "windows", "failed_windows", "flash_bytes", "static_ram_bytes", "stack_bytes", "instructions")
    for name, measured in core_runs["runs"].items():
        core = figures["cores"][name]
        assert {k: core[k] for k in keys} == {k: measured[k] for k in keys}, name
        assert core["pred_lines_as_cortex-m4"] == core["windows"] == 280, name

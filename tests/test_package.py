"""The package as ``pip install .`` installs it (not editable): every C file, linker script and template the
board, the engine and the web export read is inside the wheel, and an installed harlite, run from an empty
folder, exports the released model as a CMake library made of its own files (tests/test_export.py builds one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fixtures_firmware import RELEASED, REPO
from tools import compile_ok

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


def test_an_installed_harlite_exports_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    compile_ok([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv])  # pip: the system's
    compile_ok([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", wheel])
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([venv / "bin" / "python", "-c", "import harlite.board.sources as s; print(s.C_DIR)"],
                           cwd=empty, env=env, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(REPO)
    compile_ok([venv / "bin" / "harlite", "export", RELEASED, "--format", "cmake", "--out", "lib"], cwd=empty, env=env)
    for name in ("harlite.h", "harlite.c", "harlite_core.c", "harlite_pipeline.c"):  # from the installed package
        assert (empty / "lib" / "src" / name).read_text().split("\n", 1)[1] == (REPO / "harlite/board/c" / name).read_text()
    assert {"CMakeLists.txt", "cmake", "zephyr", "examples", "README.md"} <= {p.name for p in (empty / "lib").iterdir()}

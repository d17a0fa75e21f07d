"""``harlite export``: the released model as a C library, built as its users build it.

- cmake: ``cmake -S X -B X/build && cmake --build X/build`` with the host's gcc (every warning an error),
  whose example program replays a recording with the same '# pred' lines as ``harlite simulate --runtime
  c``; with the export's arm-none-eabi toolchain file (Cortex-M4F and Cortex-M0); the ESP-IDF and Zephyr
  entry points run against stand-ins of their CMake functions (neither SDK is installed here);
- arduino: the library's sources with the Nano 33 BLE's C flags and its example sketch as C++ with
  arm-none-eabi-g++, against stub Arduino headers;
- both: every source compiles warning-free as C99 and as C++; nothing but memcpy and memset is left for
  the C library (no allocator, no TFLM, no Arduino);
- the folder: written whole or not at all, replaced when harlite wrote it and nothing in it changed,
  else only with --force; errors are one line and exit 2.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures_firmware import NANO33BLE_CFLAGS, RELEASED, assert_pred_lines_equal_timeline, write_stubs
from tools import compile_ok, run, tool

import harlite.pipeline.export as export_stage
from harlite.bundle.loader import load_bundle
from harlite.cli import main
from harlite.errors import HarliteError
from harlite.io.files import MARKER
from harlite.pipeline.export import FORMATS, RECORD, ExportFormat, export

STRICT = ["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion", "-Werror"]


def harlite(*args: str) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def exported(fmt: str, out: Path) -> Path:
    done = harlite("export", RELEASED, "--format", fmt, "--out", out)
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture(scope="module")
def cmake_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("cmake", tmp_path_factory.mktemp("cmake") / "harlite_model")


@pytest.fixture(scope="module")
def arduino_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("arduino", tmp_path_factory.mktemp("arduino") / "harlite_cnn_lstm")


def cmake_build(source: Path, build: Path, *options: str) -> str:
    """Configure and build, every warning an error (CFLAGS, which CMake adds to a toolchain file's flags)."""
    cmake = tool("cmake")
    compile_ok([cmake, "-S", source, "-B", build, *options], env={**os.environ, "CFLAGS": " ".join(STRICT)})
    return compile_ok([cmake, "--build", build])


def test_cmake_export_builds_on_the_host_and_replays_as_simulate(cmake_export: Path, released_replay: dict) -> None:
    tool("gcc")
    cmake_build(cmake_export, cmake_export / "build")
    done = run([cmake_export / "build" / "harlite_replay", released_replay["csv"]])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 280
    assert_pred_lines_equal_timeline(lines, released_replay["timeline"])
    bad = cmake_export / "bad.csv"
    bad.write_text("time_s,acc_x\n0,1\n")
    done = run([cmake_export / "build" / "harlite_replay", bad])
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "header" in done.stderr


@pytest.mark.parametrize("cpu", ["", "-mcpu=cortex-m0 -mthumb"], ids=["cortex-m4f", "cortex-m0"])
def test_cmake_export_builds_with_its_arm_toolchain_file(cpu: str, cmake_export: Path, tmp_path: Path) -> None:
    tool("arm-none-eabi-gcc")
    options = [
        f"-DCMAKE_TOOLCHAIN_FILE={cmake_export / 'cmake' / 'arm-none-eabi.cmake'}",
        "-DCMAKE_BUILD_TYPE=MinSizeRel",
    ]
    cmake_build(cmake_export, tmp_path / "build", *options, *([f"-DHARLITE_CPU={cpu}"] if cpu else []))
    library = tmp_path / "build" / "libharlite.a"
    attributes = run([tool("arm-none-eabi-readelf"), "-A", library]).stdout
    assert ("Tag_CPU_arch: v6S-M" if cpu else "Tag_ABI_VFP_args: VFP registers") in attributes
    assert not (tmp_path / "build" / "harlite_replay").exists()  # the host example is not cross-built
    # Nothing is left for the C library but memcpy and memset (and, without an FPU, libgcc's float helpers).
    nm = tool("arm-none-eabi-nm")
    defined = {line.split()[-1] for line in run([nm, "--defined-only", library]).stdout.splitlines() if " " in line}
    undefined = {line.split()[-1] for line in run([nm, "-u", library]).stdout.splitlines() if " U " in line}
    left = undefined - defined
    assert {u for u in left if not u.startswith("__aeabi_")} == {"memcpy", "memset"}, left
    assert not left - {"memcpy", "memset"} if not cpu else True


@pytest.mark.parametrize("compiler", ["g++", "arm-none-eabi-g++"])
def test_every_source_compiles_as_cxx(compiler: str, cmake_export: Path, tmp_path: Path) -> None:
    flags = ["-std=c++11", *STRICT[:-3], "-Werror"] + (
        ["-mcpu=cortex-m4", "-mthumb", "-Os"] if "arm" in compiler else []
    )
    for source in [*sorted((cmake_export / "src").glob("*.c")), cmake_export / "examples" / "replay.c"]:
        compile_ok([tool(compiler), "-x", "c++", *flags, f"-I{cmake_export / 'src'}", "-c", source, "-o",
                    tmp_path / f"{source.stem}.o"])  # fmt: skip


def test_esp_idf_and_zephyr_entry_points(cmake_export: Path, tmp_path: Path) -> None:
    """STAND-INS, not the SDKs: ESP-IDF's idf_component_register and Zephyr's zephyr_library_* as CMake
    functions that check the files they are given exist; the export's CMake runs in script mode."""
    script = tmp_path / "check.cmake"
    script.write_text(f"""
function(idf_component_register)
  cmake_parse_arguments(ARG "" "" "SRCS;INCLUDE_DIRS" ${{ARGN}})
  foreach(f ${{ARG_SRCS}} ${{ARG_INCLUDE_DIRS}})
    if(NOT EXISTS "${{CMAKE_CURRENT_LIST_DIR}}/${{f}}")
      message(FATAL_ERROR "missing ${{f}}")
    endif()
  endforeach()
  list(LENGTH ARG_SRCS n)
  message(STATUS "idf sources ${{n}} include ${{ARG_INCLUDE_DIRS}}")
endfunction()
function(zephyr_library_named name)
  message(STATUS "zephyr library ${{name}}")
endfunction()
function(zephyr_library_sources)
  foreach(f ${{ARGN}})
    if(NOT EXISTS "${{f}}")
      message(FATAL_ERROR "missing ${{f}}")
    endif()
  endforeach()
  list(LENGTH ARGN n)
  message(STATUS "zephyr sources ${{n}}")
endfunction()
function(zephyr_include_directories dir)
  if(NOT IS_DIRECTORY "${{dir}}")
    message(FATAL_ERROR "missing ${{dir}}")
  endif()
endfunction()
set(ESP_PLATFORM 1)
include({cmake_export / "CMakeLists.txt"})
set(CONFIG_HARLITE y)
include({cmake_export / "zephyr" / "CMakeLists.txt"})
""")
    done = run([tool("cmake"), "-P", script])
    assert done.returncode == 0, done.stdout + done.stderr
    sources = len(list((cmake_export / "src").glob("*.c")))
    assert f"idf sources {sources} include src" in done.stdout + done.stderr
    assert (
        "zephyr library harlite" in done.stdout + done.stderr
        and f"zephyr sources {sources}" in done.stdout + done.stderr
    )
    module = (cmake_export / "zephyr" / "module.yml").read_text()
    assert "build:\n  cmake: zephyr\n  kconfig: zephyr/Kconfig\n" in module
    assert "config HARLITE\n" in (cmake_export / "zephyr" / "Kconfig").read_text()


def test_arduino_export_compiles_as_the_arduino_builder_would(arduino_export: Path, tmp_path: Path) -> None:
    """The library's src/ (every .c with the Nano 33 BLE's C flags), and its example sketch as C++ with
    Arduino.h first, against stub Arduino headers: no warning; the layout of an Arduino library."""
    properties = dict(line.split("=", 1) for line in (arduino_export / "library.properties").read_text().splitlines())
    assert re.fullmatch(r"harlite_[A-Za-z0-9_]+", properties["name"]) and properties["name"] == arduino_export.name
    assert properties["includes"] == "harlite.h" and properties["architectures"] == "*"
    assert (arduino_export / "examples" / "classify" / "classify.ino").is_file()
    write_stubs(tmp_path)
    gcc, gxx = tool("arm-none-eabi-gcc"), tool("arm-none-eabi-g++")
    src = arduino_export / "src"
    for source in sorted(src.glob("*.c")):
        compile_ok([gcc, *NANO33BLE_CFLAGS, "-Werror", f"-I{src}", "-c", source, "-o", tmp_path / f"{source.stem}.o"])
    compile_ok([gxx, "-std=gnu++14", *NANO33BLE_CFLAGS[1:], "-Werror", f"-I{tmp_path}", f"-I{src}", "-x", "c++",
                "-include", "Arduino.h", "-c", arduino_export / "examples" / "classify" / "classify.ino", "-o",
                tmp_path / "classify.o", "-MD", "-MF", tmp_path / "classify.d"])  # fmt: skip
    included = (tmp_path / "classify.d").read_text()
    assert "harlite.h" in included and "tensorflow" not in included


def test_readme_and_files_say_harlite_wrote_them(cmake_export: Path, arduino_export: Path) -> None:
    for folder in (cmake_export, arduino_export):
        readme = (folder / "README.md").read_text()
        assert MARKER in readme and "WALKING\\_UPSTAIRS" in readme and "harlite_push" in readme
        for path in (folder / "src").iterdir():
            assert MARKER.encode() in path.read_bytes()[:512], path  # as harlite checks before replacing a file


def test_export_replaces_only_its_own_unchanged_folder(tmp_path: Path) -> None:
    out = exported("cmake", tmp_path / "lib")
    exported("cmake", out)  # harlite's, unchanged: replaced
    (out / "src" / "harlite.c").write_text("/* my change */\n")
    done = harlite("export", RELEASED, "--format", "cmake", "--out", out)
    assert done.exit_code == 2 and done.output.count("\n") == 1 and "src/harlite.c" in done.output
    assert "--force" in done.output and (out / "src" / "harlite.c").read_text() == "/* my change */\n"
    (out / "src" / "harlite.c").unlink()
    (out / "main.c").write_text("int main(void) { return 0; }\n")
    done = harlite("export", RELEASED, "--format", "cmake", "--out", out)
    assert done.exit_code == 2 and "main.c" in done.output
    assert harlite("export", RELEASED, "--format", "cmake", "--out", out, "--force").exit_code == 0
    assert not (out / "main.c").exists() and (out / "src" / "harlite.c").is_file()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    done = harlite("export", RELEASED, "--format", "arduino", "--out", mine)
    assert done.exit_code == 2 and "harlite did not write it" in done.output and (mine / "notes.txt").exists()
    (tmp_path / "file").write_text("x")
    for where, why in ((tmp_path / "file", "a file"), (Path.cwd(), "current folder")):
        done = harlite("export", RELEASED, "--format", "cmake", "--out", where)
        assert done.exit_code == 2 and why in done.output and done.output.count("\n") == 1
    done = harlite("export", RELEASED, "--format", "zip", "--out", tmp_path / "z")
    assert done.exit_code == 2 and "arduino" in done.output and "cmake" in done.output


def test_a_failed_export_leaves_the_old_folder_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = exported("cmake", tmp_path / "lib")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_stage, "write_json", full_disk)
    with pytest.raises(OSError):
        export(load_bundle(RELEASED), "cmake", out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib"]  # no staging folder left behind


def test_another_module_can_register_a_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FORMATS, "notes", ExportFormat("notes", "a test format", lambda b: {"a/b.txt": b.labels[0]}))
    record = export(load_bundle(RELEASED), "notes", tmp_path / "n")
    assert (tmp_path / "n" / "a" / "b.txt").read_text() == "WALKING" and list(record["files"]) == ["a/b.txt"]
    assert (tmp_path / "n" / RECORD).is_file()
    monkeypatch.setitem(FORMATS, "evil", ExportFormat("evil", "escapes", lambda b: {"../x.txt": "x"}))
    with pytest.raises(HarliteError, match="outside its folder"):
        export(load_bundle(RELEASED), "evil", tmp_path / "e")
    assert not (tmp_path / "x.txt").exists()

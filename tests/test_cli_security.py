"""Issue 13 at command level: what a user runs refuses hostile or damaged bundles and inputs with one line
and exit 2, runs no code from a bundle, writes under a lock, and maps a full, read-only or forbidden disk
to one line. The commands run in-process (CliRunner) where that is the same code path, and in real
subprocesses (with their own user and mount namespaces, ``unshare``) where the environment is the point.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from bombs import REPO, gzip_bomb, measure
from click.testing import CliRunner, Result
from hostile import hostile_models as make_hostile_models
from test_bundle import MALFORMED, _set, record

from harlite.bundle.manifest import MANIFEST
from harlite.cli import main
from harlite.data.hapt import load_hapt
from harlite.data.recordings import write_csv


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result: Result | subprocess.CompletedProcess, *fragments: str) -> str:
    """The one ``Error:`` line of a command that exited 2 without a traceback; it holds ``fragments``."""
    code = result.exit_code if isinstance(result, Result) else result.returncode
    output = result.output if isinstance(result, Result) else result.stdout + result.stderr
    assert code == 2 and "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> Path:
    """20 s of HAPT subject 2 as a CSV recording."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(_session_cache))
        rec = load_hapt(["2"])[0]
    return write_csv(replace(rec, samples=rec.samples[:1000], labels=rec.labels[:1000]),
                     tmp_path_factory.mktemp("csv") / "walk.csv")  # fmt: skip


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_hostile_models(tmp_path_factory.mktemp("hostile"))


# --- code execution from a bundle -------------------------------------------------------------------

HOSTILE_COMMANDS = {
    "evaluate": lambda b, csv, tmp: ["evaluate", b],
    "simulate --runtime keras": lambda b, csv, tmp: ["simulate", b, csv, "--runtime", "keras"],
    "parity": lambda b, csv, tmp: ["parity", b, "--limit", "20"],
    "convert": lambda b, csv, tmp: ["convert", b / "model.keras", "--out", tmp / "out"],
}


@pytest.mark.parametrize("command", HOSTILE_COMMANDS)
def test_a_hostile_hdf5_model_in_a_bundle_runs_nothing_through_any_command(
    command: str, bundle: Path, hostile: dict[str, Path], walk_csv: Path, tmp_path: Path, harlite_cache: Path
) -> None:
    shutil.copy(hostile["hdf5"], bundle / "model.keras")  # a teammate's "bundle": the manifest records it
    record(bundle, "keras")
    refused(invoke(*HOSTILE_COMMANDS[command](bundle, walk_csv, tmp_path)), "is an HDF5 (.h5) Keras file")
    assert not hostile["marker"].exists()
    assert not (tmp_path / "out" / MANIFEST).exists()


# --- integrity --------------------------------------------------------------------------------------

KINDS = ("keras", "int8", "float32", "float16", "tflm_model_header", "tflm_model_data", "tflm_config",
         "tflm_op_resolver", "engine_header", "engine_model", "engine_kernels_header", "engine_kernels")  # fmt: skip
CHECKS = {
    "simulate": lambda b, csv: ["simulate", b, csv, "--runtime", "litert"],
    "parity": lambda b, csv: ["parity", b, "--limit", "5"],
    "evaluate": lambda b, csv: ["evaluate", b],
}


@pytest.mark.parametrize("command", CHECKS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_flipped_byte_in_any_artifact_is_caught_by_every_command(kind: str, command: str, bundle: Path,
                                                                   walk_csv: Path) -> None:  # fmt: skip
    manifest = json.loads((bundle / MANIFEST).read_text())
    path = bundle / manifest["artifacts"][kind]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    refused(invoke(*CHECKS[command](bundle, walk_csv)), str(path), "does not match its sha256")


def test_evaluate_of_a_bundles_own_file_verifies_it(bundle: Path) -> None:
    with open(bundle / "model_int8.tflite", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0x80]))
    refused(invoke("evaluate", bundle / "model_int8.tflite"), "model_int8.tflite does not match its sha256")


# --- paths ------------------------------------------------------------------------------------------


def _point(bundle: Path, kind: str, file: str) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["artifacts"][kind]["file"] = file
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def test_paths_out_of_the_bundle_are_refused_by_commands(bundle: Path, walk_csv: Path, tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    _point(bundle, "tflm_config", "../../../../../../../etc/passwd")
    refused(invoke("simulate", bundle, walk_csv, "--dump-golden", golden), "leaves the bundle folder")
    _point(bundle, "tflm_config", "/etc/passwd")
    refused(
        invoke("simulate", bundle, walk_csv, "--dump-golden", golden),
        "artifacts.tflm_config.file must be a relative path",
    )
    _point(bundle, "tflm_config", "tflm/harlite_model_config.h")
    header = bundle / "tflm" / "harlite_model_config.h"
    header.unlink()
    header.symlink_to("/etc/passwd")  # the manifest records the link's target exactly
    record(bundle, "tflm_config")
    refused(invoke("simulate", bundle, walk_csv, "--dump-golden", golden), "outside the bundle folder")
    assert not list(golden.glob("*.h"))
    (bundle / "model_int8.tflite").unlink()
    (bundle / "model_int8.tflite").symlink_to("/dev/zero")
    refused(invoke("parity", bundle), "is a link to /dev/zero, outside the bundle folder")


# --- malformed manifests ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def released_manifest() -> dict[str, Any]:
    return json.loads((REPO / "models" / "cnn_lstm" / MANIFEST).read_text())


@pytest.mark.parametrize(("field", "value", "message"), MALFORMED,
                         ids=[f"{f}={'edit' if callable(v) else str(v)[:20]}" for f, v, _ in MALFORMED])  # fmt: skip
def test_each_malformed_manifest_field_is_exit_2_and_one_line_naming_it(
    field: str, value: Any, message: str, released_manifest: dict[str, Any], walk_csv: Path, tmp_path: Path
) -> None:
    manifest = copy.deepcopy(released_manifest)
    _set(field, value(manifest) if callable(value) else value)(manifest)
    # the manifest is read before any artifact; infinity as JSON can write it: 1e400
    (tmp_path / MANIFEST).write_text(json.dumps(manifest).replace("Infinity", "1e400"))
    refused(invoke("simulate", tmp_path, walk_csv, "--runtime", "litert"), message)


# --- one writer per output folder -------------------------------------------------------------------

HOLDER = """
import sys
from harlite.io.locks import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def _locked_commands(tiny_bundle: Path, walk_csv: Path, out: Path) -> dict[str, tuple[Path, list[Any]]]:
    run = tiny_bundle.parent / "run"
    return {
        "simulate --out": (out, ["simulate", tiny_bundle, walk_csv, "--runtime", "litert", "--out", out]),
        "parity --out": (out, ["parity", tiny_bundle, "--out", out]),
        "evaluate --out": (out, ["evaluate", tiny_bundle, "--out", out]),
        "convert --out": (out, ["convert", run, "--out", out]),
        "convert BUNDLE": (out, ["convert", out]),
        "train --out": (out, ["train", "--out", out, "--epochs", "1"]),
        "qat RUN": (out / "qat", ["qat", out]),
        "build --out": (out, ["build", "--quick", "--out", out]),
    }


@pytest.mark.parametrize("command", ["simulate --out", "parity --out", "evaluate --out", "convert --out",
                                     "convert BUNDLE", "train --out", "qat RUN", "build --out"])  # fmt: skip
def test_a_second_writer_of_an_output_folder_is_refused(command: str, tiny_bundle: Path, walk_csv: Path,
                                                        tmp_path: Path) -> None:  # fmt: skip
    out = Path(shutil.copytree(tiny_bundle, tmp_path / "out")) if command == "convert BUNDLE" else tmp_path / "out"
    locked, args = _locked_commands(tiny_bundle, walk_csv, out)[command]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(locked)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        before = sorted(p.name for p in out.rglob("*"))
        refused(invoke(*args), "is being written by another harlite process", f"pid {holder.pid}")
    finally:
        holder.communicate("", timeout=30)
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing written


# --- the environment: names too long, a file for a folder, read-only, forbidden, full -----------------


def test_bad_output_paths_are_one_line(tiny_bundle: Path, walk_csv: Path, tmp_path: Path) -> None:
    args = ["simulate", tiny_bundle, walk_csv, "--runtime", "litert", "--out"]
    refused(invoke(*args, tmp_path / ("x" * 300)), "File name too long")
    (tmp_path / "file").write_text("a file where a folder is expected")
    refused(invoke(*args, tmp_path / "file" / "out"), "Not a directory")
    refused(invoke(*args, tmp_path / "file"), "is a file")


def _namespace(setup: str, argv: list[str], map_root: bool) -> subprocess.CompletedProcess:
    """``argv`` after the shell ``setup``, in new user and mount namespaces (root inside with ``map_root``,
    else an unprivileged user to whom a folder's permissions apply, root outside notwithstanding)."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) not found: apt-get install util-linux")
    user = ["--user", "--map-root-user", "--mount"] if map_root else ["--user"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(["unshare", *user, "sh", "-c", f'{setup} && exec "$@"', "sh", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("failure", ["read-only", "permission denied", "disk full"])
def test_a_read_only_forbidden_or_full_disk_is_one_line_and_exit_2(failure: str, tiny_bundle: Path, walk_csv: Path,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    disk = tmp_path / "disk"
    disk.mkdir()
    setups = {
        "read-only": (f"mount -t tmpfs -o ro tmpfs {disk}", True, "Read-only file system"),
        "permission denied": (f"chmod 555 {disk}", False, "Permission denied"),
        "disk full": (f"mount -t tmpfs -o size=8k tmpfs {disk}", True, "No space left on device"),
    }
    setup, map_root, message = setups[failure]
    argv = [sys.executable, "-m", "harlite", "simulate", str(tiny_bundle), str(walk_csv), "--runtime", "litert",
            "--out", str(disk / "out")]  # fmt: skip
    line = refused(_namespace(setup, argv, map_root), message)
    assert str(disk / "out") in line  # the file or folder that could not be written


# --- bounded input at command level: memory measured in a subprocess -------------------------------


def _simulate_peak(tiny_bundle: Path, recording: Path) -> dict[str, Any]:
    return measure(
        [sys.executable, "-m", "harlite", "simulate", str(tiny_bundle), str(recording), "--runtime", "litert"]
    )


def test_bombs_given_to_simulate_are_refused_in_little_memory(
    tiny_bundle: Path, walk_csv: Path, tmp_path: Path
) -> None:
    baseline = _simulate_peak(tiny_bundle, walk_csv)  # a good 20 s recording, replayed
    assert baseline["returncode"] == 0, baseline["stderr"]
    slow = tmp_path / "slow.csv"  # 917 bytes whose time step of 1e6 s once asked for 7.45 GiB
    text = "time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z,label\n" + "".join(
        f"{i * 1e6:.1f},0.012,-0.981,0.102,0.011,-0.021,0.003,WALKING\n" for i in range(13)
    )
    slow.write_text(text + "#" * (916 - len(text)) + "\n")  # a comment line makes it 917 bytes
    assert slow.stat().st_size == 917
    bomb = gzip_bomb(tmp_path / "bomb.csv.gz", 2016 << 20, fill=b"\n", head=b"time_s,acc_x,acc_y,acc_z\n")
    assert bomb.stat().st_size < 4 << 20  # 4 MB expanding to 2.1 GB of blank lines
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    cases = {slow: "Hz", bomb: "expands more than 100 times", zero: "is a device or special file, not a regular file"}
    for path, message in cases.items():
        run = _simulate_peak(tiny_bundle, path)
        assert run["returncode"] == 2 and message in run["stderr"] and "Traceback" not in run["stderr"], run
        assert run["peak_mib"] < baseline["peak_mib"] + 32, (path.name, run["peak_mib"], baseline["peak_mib"])


# --- plausibility: warnings and errors as one line, in a replay and in a dataset ------------------


def _edited(walk_csv: Path, path: Path, edit: Any) -> Path:
    lines = walk_csv.read_text().splitlines()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([lines[0], *(edit(i, line.split(",")) for i, line in enumerate(lines[1:]))]) + "\n")
    return path


def _spike(i: int, fields: list[str]) -> str:
    return ",".join([fields[0], "1e30" if i == 500 else fields[1], *fields[2:]])


def _milliseconds(i: int, fields: list[str]) -> str:
    return ",".join([f"{float(fields[0]) * 1000:g}", *fields[1:]])


def test_plausibility_warnings_and_errors_are_one_line(tiny_bundle: Path, walk_csv: Path, tmp_path: Path,
                                                       harlite_cache: Path) -> None:  # fmt: skip
    spiky = _edited(walk_csv, tmp_path / "data" / "alice" / "spiky.csv", _spike)
    replay = invoke("simulate", tiny_bundle, spiky, "--runtime", "litert")
    assert replay.exit_code == 0, replay.output
    warned = [line for line in replay.output.splitlines() if "beyond what an IMU reports" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: ") and "1 sample(s)" in warned[0], replay.output
    _edited(walk_csv, tmp_path / "data" / "bob" / "walk.csv", lambda i, f: ",".join([*f[:-1], "WALKING"]))
    info = invoke("data", "info", "--data", tmp_path / "data")
    assert info.exit_code == 0, info.output
    assert [line for line in info.output.splitlines() if "beyond what an IMU reports" in line] == [warned[0]]
    ms = _edited(walk_csv, tmp_path / "data" / "carol" / "ms.csv", _milliseconds)
    refused(invoke("simulate", tiny_bundle, ms), "looks like milliseconds")
    refused(invoke("data", "info", "--data", tmp_path / "data"), "ms.csv", "looks like milliseconds")


# --- small things -----------------------------------------------------------------------------------


def test_evaluate_prints_its_table_once(tiny_bundle: Path, harlite_cache: Path) -> None:
    result = invoke("evaluate", tiny_bundle)
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.output.splitlines() if " accuracy " in line]
    assert rows == ["keras", "int8", "float32", "float16"], result.output


# --- generated C: a label cannot change the header's meaning --------------------------------------

HOSTILE_LABELS = ["*/ #error in a label /*", "??(trigraph ??/", "#error label", "snow \u2603 ??'", "??=define X",
                  'say "hi"', "back\\\nslash", "new\n#error line", "tab\there"]  # fmt: skip
PRINT_LABELS = r"""
#include <stdio.h>
#include "harlite_model_config.h"
static const char *labels[] = HARLITE_LABELS;
int main(void) {
  int c;
  const char *p;
  for (c = 0; c < HARLITE_NUM_CLASSES; c++) {
    for (p = labels[c]; *p; p++) printf("%02x", (unsigned char)*p);
    printf("\n");
  }
  return 0;
}
"""


def test_hostile_labels_are_refused_by_commands_and_escaped_by_the_generator(tiny_bundle: Path, bundle: Path,
                                                                             tmp_path: Path) -> None:  # fmt: skip
    from tools import tool

    from harlite.bundle.loader import load_bundle
    from harlite.codegen.tflm import config_header
    from harlite.core.protocol import check_label
    from harlite.errors import HarliteError

    def accepted(label: str) -> bool:
        try:
            return check_label(label) == label
        except HarliteError:
            return False

    manifest = load_bundle(tiny_bundle).manifest
    header_before = (bundle / "tflm" / "harlite_model_config.h").read_bytes()
    for label in (label for label in HOSTILE_LABELS if not accepted(label)):
        (bundle / MANIFEST).write_text(json.dumps({**manifest, "labels": [label, *manifest["labels"][1:]]}))
        refused(invoke("convert", bundle), "field labels[0] must be a label")
        assert (bundle / "tflm" / "harlite_model_config.h").read_bytes() == header_before
    assert [label for label in HOSTILE_LABELS if accepted(label)] == HOSTILE_LABELS[:4]
    # Whatever reaches it, the generator escapes: every label, even those the loader refuses, compiles to itself.
    header = config_header({**manifest, "labels": HOSTILE_LABELS}, comment="*/ #error in a comment\n#error ??/")
    directives = [line.split()[0] for line in header.splitlines() if line.lstrip().startswith("#")]
    assert set(directives) == {"#ifndef", "#define", "#endif"} and directives.count("#ifndef") == 1
    (tmp_path / "harlite_model_config.h").write_text(header)
    (tmp_path / "main.c").write_text(PRINT_LABELS)
    compiled = subprocess.run([tool("gcc"), "-std=c99", "-trigraphs", "-Wall", "-Wextra", "-Werror", "-pedantic",
                               "-o", str(tmp_path / "labels"), str(tmp_path / "main.c")], capture_output=True,
                              text=True, check=False)  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr
    printed = subprocess.run([str(tmp_path / "labels")], capture_output=True, text=True, check=True).stdout
    assert printed.split() == [label.encode("utf-8").hex() for label in HOSTILE_LABELS]

"""harlite.bundle: the manifest schema, confined artifact paths, sha256 and C-array checks, safe Keras loading.

The bundle under test is the released models/cnn_lstm (real .keras, .tflite, TFLM and C engine sources).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bombs import zip_bomb
from hostile import hostile_models as make_hostile_models

import harlite.bundle.loader
import harlite.io.hashing
from harlite.bundle.keras import load_keras
from harlite.bundle.loader import load_bundle
from harlite.bundle.manifest import MANIFEST, validate
from harlite.errors import BundleError

RELEASED = Path(__file__).resolve().parents[1] / "models" / "cnn_lstm"
REBUILD = "rebuild the bundle with 'harlite build'"


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return folder


def record(folder: Path, kind: str) -> None:
    """Update the manifest's bytes and sha256 of one artifact to what the file now holds (an attacker's edit)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    data = (folder / manifest["artifacts"][kind]["file"]).read_bytes()
    manifest["artifacts"][kind].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    write_manifest(folder, manifest)


@pytest.fixture(scope="session")
def released_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the released bundle (format_version 2)."""
    return Path(shutil.copytree(RELEASED, tmp_path_factory.mktemp("released") / "cnn_lstm"))


@pytest.fixture
def bundle_dir(released_v2: Path, tmp_path: Path) -> Path:
    """A writable copy of the released bundle (format_version 2)."""
    return Path(shutil.copytree(released_v2, tmp_path / "bundle"))


@pytest.fixture(scope="session")
def good_manifest(released_v2: Path) -> dict[str, Any]:
    return json.loads((released_v2 / MANIFEST).read_text())


def one_line_error(call: Callable[[], Any], *fragments: str) -> str:
    with pytest.raises(BundleError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- the released bundle ----------------------------------------------------------------------------


def test_the_released_bundle_loads_verified(released_v2: Path) -> None:
    bundle = load_bundle(released_v2)
    assert bundle.root == released_v2.resolve() and bundle.labels[0] == "WALKING"
    assert set(bundle.kinds) >= {"keras", "int8", "float32", "float16", "tflm_model_data", "tflm_config"}
    assert bundle.read("int8") == (released_v2 / "model_int8.tflite").read_bytes()
    assert bundle.path("tflm_model_data") == (released_v2 / "tflm" / "harlite_model_data.cpp").resolve()
    assert bundle.frontend().window == 128 and load_bundle(released_v2 / MANIFEST).manifest == bundle.manifest


def test_format_versions_other_than_2_say_who_made_them(bundle_dir: Path, good_manifest: dict[str, Any]) -> None:
    shutil.copy(RELEASED / MANIFEST, bundle_dir / MANIFEST)
    v1 = json.loads((RELEASED / MANIFEST).read_text())
    if v1["format_version"] == 1:  # the release is rebuilt as version 2 in time; then make a version 1 one
        one_line_error(lambda: load_bundle(bundle_dir), "format_version 1", "made by an older harlite", REBUILD)
    write_manifest(bundle_dir, {**good_manifest, "format_version": 1})
    one_line_error(lambda: load_bundle(bundle_dir), "format_version 1", "made by an older harlite", REBUILD)
    write_manifest(bundle_dir, {**good_manifest, "format_version": 3})
    one_line_error(lambda: load_bundle(bundle_dir), "made by a newer harlite", "upgrade harlite")
    write_manifest(bundle_dir, {**good_manifest, "format": "keras-model"})
    one_line_error(lambda: load_bundle(bundle_dir), "is not a harlite bundle manifest")


def test_not_a_bundle(tmp_path: Path, released_v2: Path) -> None:
    (tmp_path / "walk.csv").write_text("time_s,acc_x\n0,1\n")
    one_line_error(lambda: load_bundle(tmp_path / "walk.csv"), "is not a bundle", "manifest.json")
    one_line_error(lambda: load_bundle(tmp_path), "holds no manifest.json")
    one_line_error(lambda: load_bundle(tmp_path / "nowhere"), "does not exist")
    one_line_error(lambda: load_bundle(released_v2 / "model_int8.tflite"), "is not a bundle")


# --- the schema -------------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(manifest: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = manifest
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return edit


_DELETE = object()
MALFORMED = [
    ("labels", "WALKING,SITTING", "field labels must be a list"),
    ("labels", ["WALKING"], "field labels must be a list of 2 to 64"),
    ("labels", ["WALKING", "WALKING", "SITTING"], "labels must hold distinct items"),
    ("labels", ["WALK\n#error injected", "SIT"], "field labels[0] must be a label"),
    ("labels", ["WALK,ING", "SIT"], "labels[0] must be a label"),
    ("labels", ['WALK"', "SIT"], "labels[0]"),
    ("labels", ["W" * 32, "SIT"], "labels[0]"),
    ("labels", ["WALK\u202eGNI", "SIT"], "labels[0]"),  # a right-to-left override: a format character
    ("labels", [" WALK", "SIT"], "labels[0]"),
    ("labels", ["WALK", 3], "labels[1]"),
    ("hop", 0, "field hop must be an integer >= 1 and <= window (128), got 0"),
    ("hop", 129, "field hop must be an integer >= 1 and <= window (128)"),
    ("hop", 64.0, "field hop must be an integer"),
    ("hop", True, "field hop must be an integer"),
    ("window", 4, "field window must be an integer in 8..65536"),
    ("rate_hz", -50, "field rate_hz must be a finite number > 0"),
    ("rate_hz", "50", "field rate_hz must be a finite number"),
    ("rate_hz", 1e400, "field rate_hz must be a finite number"),  # JSON 1e400 parses as infinity
    ("name", "cnn\nlstm", "field name must be a name of letters"),
    ("raw_channels", [{"name": "acc_x", "unit": "m/s^2"}] * 3, "field raw_channels must be acc_x, acc_y, acc_z"),
    ("frontend.window", 64, "field frontend.window must equal window (128), got 64"),
    ("frontend.rate_hz", 100.0, "frontend.rate_hz must equal rate_hz"),
    ("frontend.raw_channels", ["acc_x", "acc_y", "acc_z"], "frontend.raw_channels must equal raw_channels"),
    ("frontend.units", ["g"] * 9, "field frontend.units must equal frontend.channels"),
    (
        "frontend.channels",
        lambda m: ["body acc x", *m["frontend"]["channels"][1:]],
        "frontend.channels[0] must be a channel name",
    ),
    (
        "frontend.channels",
        lambda m: [*m["frontend"]["channels"][:8], "tilt_x"],
        "field frontend: unknown channel 'tilt_x'",
    ),
    ("frontend.gravity_sos", [[1, 2, 3]], "frontend.gravity_sos[0] must be a list of exactly 6"),
    ("frontend.gravity_cutoff_hz", 30.0, "frontend.gravity_cutoff_hz must be a finite number > 0 and < rate_hz (25)"),
    ("frontend.digest", "0123456789abcdef", "made by another front-end implementation"),
    ("frontend.gravity_order", 4, "field frontend"),  # a filter this harlite does not design from these values
    (
        "normalization.mean",
        [0.0] * 8,
        "normalization.mean must be a list of exactly 9 (the length of frontend.channels)",
    ),
    ("normalization.std", [0.0] * 9, "field normalization.std[0] must be a finite number > 0, got 0"),
    ("normalization.std", [1e-40] * 9, "normalization.std holds a standard deviation too small to quantize"),
    ("normalization", _DELETE, "field normalization is missing"),
    ("quantization.input.scale", 0, "quantization.input.scale must be a finite number > 0"),
    ("quantization.input.zero_point", 200, "quantization.input.zero_point must be an integer in -128..127"),
    ("quantization.input.zero_point", 1.5, "quantization.input.zero_point must be an integer"),
    ("quantization.input.input_mul", [1.0] * 9, "quantization.input.input_mul does not follow from normalization"),
    ("quantization.output.zero_point", "-128", "quantization.output.zero_point must be an integer"),
    ("tflm.arena_bytes", "big", "field tflm.arena_bytes must be an integer in 1..268435456, got 'big'"),
    ("tflm.arena_bytes", 0, "field tflm.arena_bytes must be an integer in 1..268435456"),
    ("tflm", [], "field tflm must be an object"),
    ("ops", "CONV_2D", "field ops must be a list"),
    ("ops", ["conv_2d"], "field ops[0] must be a TFLite builtin op name"),
    ("artifacts.int8", _DELETE, "field artifacts.int8 is missing"),
    ("artifacts.int8.sha256", "deadbeef", "field artifacts.int8.sha256 must be 64 lowercase hex digits"),
    ("artifacts.int8.bytes", -1, "field artifacts.int8.bytes must be an integer in 0..67108864"),
    ("artifacts.int8.bytes", 1 << 40, "artifacts.int8.bytes must be an integer in 0..67108864"),
    ("artifacts.int8.bytes", "28000", "artifacts.int8.bytes must be an integer"),
    ("artifacts.int8.file", 7, "artifacts.int8.file must be a relative path"),
    ("artifacts.Int8", {"file": "x", "bytes": 1, "sha256": "0" * 64}, "field artifacts has the key 'Int8'"),
    ("metrics.int8.accuracy", 1.5, "field metrics.int8.accuracy must be a finite number >= 0 and <= 1"),
    ("tflm.target", "tflm-1999", "field tflm.target must be one of 'tflm-arduino-2023.02', 'tflm-2026'"),
    ("engine.scratch_bytes", "much", "field engine.scratch_bytes must be an integer"),
    ("dataset.split", "random", "field dataset.split must be one of 'subject', 'recording', 'time'"),
    ("dataset.test", "2,4", "field dataset.test must be a list"),
    ("dataset.window", 4, "field dataset.window must be null or an integer in 8..65536"),
    ("dataset.windows", {"test": {"WALKING": -1}}, "field dataset.windows.test.WALKING must be an integer"),
    ("dataset.merge", {"jog": "RUN\n#error"}, "field dataset.merge.jog must be a label"),
    ("raw_channels", lambda m: m["raw_channels"][:4], "field raw_channels must be acc_x, acc_y, acc_z"),
    ("format_version", "2", "field format_version must be 2, got '2'"),
    ("format_version", True, "field format_version must be 2, got true"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    MALFORMED,
    ids=[f"{f}={'edit' if callable(v) else str(v)[:20]}" for f, v, _ in MALFORMED],
)
def test_every_malformed_field_is_one_line_naming_it(good_manifest: dict[str, Any], field: str, value: Any,
                                                     message: str) -> None:  # fmt: skip
    manifest = copy.deepcopy(good_manifest)
    _set(field, value(manifest) if callable(value) else value)(manifest)
    text = one_line_error(lambda: validate(json.loads(json.dumps(manifest)), "b/manifest.json"), message)
    assert text.startswith("b/manifest.json") and ("rebuild" in text or "harlite build" in text)


def test_the_good_manifest_passes_and_validate_sees_the_whole_of_it(good_manifest: dict[str, Any]) -> None:
    validate(copy.deepcopy(good_manifest), "m.json")
    extended = {**copy.deepcopy(good_manifest), "engine": {"scratch_bytes": 512, "weight_bytes": 20000, "new": 1}}
    validate(extended, "m.json")  # fields a newer harlite adds are allowed
    extended["engine"]["scratch_bytes"] = -1
    one_line_error(lambda: validate(extended, "m.json"), "field engine.scratch_bytes must be an integer")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "harlite-bundle", "rate_hz": NaN}', "NaN is not a number JSON allows"),
        ('{"format": "harlite-bundle", "rate_hz": -Infinity}', "-Infinity is not a number JSON allows"),
        ('{"format": "harlite-bundle", "format": "x"}', "the key 'format' appears twice"),
        ('{"format": "harlite-bundle", ', "is not valid JSON (line 1"),
        ('["harlite-bundle"]', "is not a JSON object"),
        ("[" * 100000 + "]" * 100000, "is not valid manifest JSON"),
    ],
    ids=["nan", "infinity", "duplicate-key", "truncated", "array", "deep"],
)
def test_manifest_json_is_parsed_strictly(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / MANIFEST).write_text(text)
    one_line_error(lambda: load_bundle(tmp_path), message)


def test_the_manifest_is_read_with_a_size_cap_and_as_utf8(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_bytes(b'{"format": "harlite-bundle", "pad": "' + b"x" * (2 << 20) + b'"}')
    one_line_error(lambda: load_bundle(tmp_path), "more than the 1 MiB harlite reads")
    (tmp_path / MANIFEST).write_bytes(b'{"format": "harlite-bundle\xff"}')
    one_line_error(lambda: load_bundle(tmp_path), "is not UTF-8 text")
    (tmp_path / MANIFEST).unlink()
    os.mkfifo(tmp_path / MANIFEST)  # a FIFO must not hang the loader
    one_line_error(lambda: load_bundle(tmp_path / MANIFEST), "is a FIFO, not a regular file")


# --- confined paths ---------------------------------------------------------------------------------


def _point(bundle_dir: Path, kind: str, file: str) -> None:
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["artifacts"][kind]["file"] = file
    write_manifest(bundle_dir, manifest)


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("../../../../../../etc/passwd", "leaves the bundle folder"),
        ("tflm/../../cnn_lstm/model_int8.tflite", "leaves the bundle folder"),
        ("/etc/passwd", "field artifacts.int8.file must be a relative path of letters"),
        ("/dev/zero", "field artifacts.int8.file must be a relative path"),
        ("~/.ssh/id_rsa", "field artifacts.int8.file must be a relative path"),
        ("tflm\\..\\..\\x", "field artifacts.int8.file must be a relative path"),
        ("C:/Windows/win.ini", "field artifacts.int8.file must be a relative path"),
        ("tflm/*/int main(){}/*", "field artifacts.int8.file must be a relative path"),
        (".", "leaves the bundle folder"),
        ("tflm", "is a folder, not a regular file"),
        ("model_int9.tflite", "is missing: the bundle is incomplete or was altered"),
    ],
)
def test_artifact_paths_are_confined_to_the_bundle(bundle_dir: Path, file: str, message: str) -> None:
    _point(bundle_dir, "int8", file)
    one_line_error(lambda: load_bundle(bundle_dir), message)
    if "folder, not" in message:  # confined, so loading without verifying passes; using it does not
        one_line_error(lambda: load_bundle(bundle_dir, verify=False).read("int8"), message)
    else:  # paths are confined at load even without verifying
        one_line_error(lambda: load_bundle(bundle_dir, verify=False), message)


def test_symlinks_out_of_the_bundle_and_to_devices_are_refused(bundle_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    os.symlink(secret, bundle_dir / "leak.tflite")
    _point(bundle_dir, "int8", "leak.tflite")
    one_line_error(lambda: load_bundle(bundle_dir), "is a link to", "outside the bundle folder")
    os.symlink("/dev/zero", bundle_dir / "zero.tflite")
    _point(bundle_dir, "int8", "zero.tflite")
    one_line_error(lambda: load_bundle(bundle_dir), "outside the bundle folder")
    os.mkfifo(bundle_dir / "fifo.tflite")
    _point(bundle_dir, "int8", "fifo.tflite")
    one_line_error(lambda: load_bundle(bundle_dir), "fifo.tflite is a FIFO, not a regular file")
    os.symlink("loop", bundle_dir / "loop")
    _point(bundle_dir, "int8", "loop")
    one_line_error(lambda: load_bundle(bundle_dir), "cannot be resolved")
    os.symlink("model_int8.tflite", bundle_dir / "alias.tflite")  # a link that stays inside is fine
    _point(bundle_dir, "int8", "alias.tflite")
    assert load_bundle(bundle_dir).read("int8") == (bundle_dir / "model_int8.tflite").read_bytes()


# --- integrity --------------------------------------------------------------------------------------

KINDS = ["keras", "int8", "float32", "float16", "tflm_model_header", "tflm_model_data", "tflm_config",
         "tflm_op_resolver"]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_a_flipped_byte_in_any_artifact_is_caught_and_named(bundle_dir: Path, good_manifest: dict[str, Any],
                                                            kind: str) -> None:  # fmt: skip
    path = bundle_dir / good_manifest["artifacts"][kind]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    one_line_error(lambda: load_bundle(bundle_dir), str(path.resolve()), "does not match its sha256",
                   "altered or is incomplete")  # fmt: skip
    bundle = load_bundle(bundle_dir, verify=False)  # and on first use when loading does not verify
    one_line_error(lambda: bundle.read(kind), "does not match its sha256")
    one_line_error(lambda: bundle.path(kind), "does not match its sha256")


def test_missing_and_truncated_artifacts(bundle_dir: Path) -> None:
    (bundle_dir / "tflm" / "harlite_model_data.cpp").unlink()
    one_line_error(lambda: load_bundle(bundle_dir), "harlite_model_data.cpp is missing", "incomplete")
    shutil.copy(RELEASED / "tflm" / "harlite_model_data.cpp", bundle_dir / "tflm")
    path = bundle_dir / "model_int8.tflite"
    path.write_bytes(path.read_bytes()[:1000])
    size = (RELEASED / "model_int8.tflite").stat().st_size
    one_line_error(lambda: load_bundle(bundle_dir), f"model_int8.tflite is 1000 bytes but the manifest records {size}")


def test_an_artifact_changed_after_loading_is_caught_on_use(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    path = bundle_dir / "model_int8.tflite"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, new content
    one_line_error(lambda: bundle.read("int8"), "does not match its sha256")
    one_line_error(lambda: bundle.path("int8"), "does not match its sha256")


def test_each_file_state_is_hashed_once_per_process(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = hashlib.sha256, []

    def counting(*args: Any) -> Any:  # hashlib is shared: count the loader's own hashing only
        if sys._getframe(1).f_code.co_filename in (harlite.bundle.loader.__file__, harlite.io.hashing.__file__):
            calls.append(1)
        return real(*args)

    bundle = load_bundle(bundle_dir)
    monkeypatch.setattr(hashlib, "sha256", counting)
    for _ in range(500):  # what a replay does per window
        bundle.path("int8")
        bundle.path("tflm_model_data")
    load_bundle(bundle_dir)
    assert calls == []
    os.utime(bundle_dir / "model_int8.tflite")  # a new file state: hashed again
    bundle.path("int8")
    assert len(calls) == 1


def test_the_c_array_must_be_the_int8_model(bundle_dir: Path, good_manifest: dict[str, Any]) -> None:
    cpp = bundle_dir / "tflm" / "harlite_model_data.cpp"
    original = cpp.read_text()
    first_byte = original.index("0x", original.index("{"))
    cpp.write_text(original[:first_byte] + ("0x00" if original[first_byte:first_byte + 4] != "0x00" else "0x01")
                   + original[first_byte + 4:])  # fmt: skip
    record(bundle_dir, "tflm_model_data")  # the sha256 now matches the altered file
    one_line_error(lambda: load_bundle(bundle_dir), "harlite_model_data.cpp is not the C source of model_int8.tflite")
    # code hidden after the comment line
    cpp.write_text(original.replace(" */\n", " */ int harlite_evil = 1; /* x */\n", 1))
    record(bundle_dir, "tflm_model_data")
    one_line_error(lambda: load_bundle(bundle_dir), "is not the C source")
    # another build's int8 model swapped in, with the manifest updated to match it
    cpp.write_text(original)
    record(bundle_dir, "tflm_model_data")
    shutil.copy(bundle_dir / "model_float16.tflite", bundle_dir / "model_int8.tflite")
    record(bundle_dir, "int8")
    one_line_error(lambda: load_bundle(bundle_dir), "the model array differs from the int8 model")
    # the header's length
    shutil.copy(RELEASED / "model_int8.tflite", bundle_dir / "model_int8.tflite")
    record(bundle_dir, "int8")
    header = bundle_dir / "tflm" / "harlite_model_data.h"
    size = (RELEASED / "model_int8.tflite").stat().st_size
    header.write_text(header.read_text().replace(f"LEN {size}", f"LEN {size + 1}"))
    record(bundle_dir, "tflm_model_header")
    one_line_error(lambda: load_bundle(bundle_dir), "harlite_model_data.h is not the C source")


# --- safe Keras loading -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """model.keras files that run code when tf-keras loads them: HDF5 and zip, each with a Lambda."""
    return make_hostile_models(tmp_path_factory.mktemp("hostile"))


def test_an_hdf5_model_named_keras_runs_nothing_and_is_refused(hostile_models: dict[str, Path],
                                                               bundle_dir: Path) -> None:  # fmt: skip
    path, marker = hostile_models["hdf5"], hostile_models["marker"]
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    one_line_error(lambda: load_keras(path), "is an HDF5 (.h5) Keras file", "can run code")
    # in a bundle whose manifest records the hostile file exactly (a teammate's "bundle")
    shutil.copy(path, bundle_dir / "model.keras")
    record(bundle_dir, "keras")
    bundle = load_bundle(bundle_dir)
    one_line_error(bundle.keras_model, "is an HDF5 (.h5) Keras file")
    assert not marker.exists()
    # the threat is real: tf-keras itself runs the Lambda's code, safe_mode notwithstanding
    from harlite.tf import keras

    keras().models.load_model(path, safe_mode=True)
    assert marker.read_text() == "pwned"
    marker.unlink()


def test_a_zip_keras_with_a_lambda_runs_nothing_and_is_refused(hostile_models: dict[str, Path]) -> None:
    path, marker = hostile_models["zip"], hostile_models["marker"]
    one_line_error(lambda: load_keras(path), "is refused: its config.json uses 'Lambda'", "no Lambda")
    assert not marker.exists()
    from harlite.tf import keras

    keras().models.load_model(path, safe_mode=False)  # what harlite never does
    assert marker.read_text() == "pwned"
    marker.unlink()


def _rezip(source: Path, dest: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    with zipfile.ZipFile(dest, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return dest


def _edit_config(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, bytes]], None]:
    def change(members: dict[str, bytes]) -> None:
        config = json.loads(members["config.json"])
        edit(config)
        members["config.json"] = json.dumps(config).encode()

    return change


def _with_external_link(members: dict[str, bytes]) -> None:
    import h5py

    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "a") as h5:
        h5["stolen"] = h5py.ExternalLink("/etc/passwd", "/")
    members["model.weights.h5"] = buffer.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update({"assets/payload.py": b"print(1)"}), "unexpected or missing: assets/payload.py"),
        (lambda m: m.pop("metadata.json"), "unexpected or missing: metadata.json"),
        (
            _edit_config(lambda c: c["config"]["layers"][1].update(module="os", class_name="system")),
            "uses 'system' from module 'os'",
        ),
        (_edit_config(lambda c: c["config"]["layers"][1].update(class_name="TFOpLambda")), "uses 'TFOpLambda'"),
        (
            _edit_config(lambda c: c["config"]["layers"][1].update(registered_name="Custom>Conv1D")),
            "registers 'Custom>Conv1D'",
        ),
        (_with_external_link, "stolen is a ExternalLink"),
        (lambda m: m.update({"config.json": b"{NaN"}), "is not valid JSON"),
    ],
    ids=["extra-member", "missing-member", "module-import", "tf-op-lambda", "registered", "external-link", "bad-json"],
)
def test_a_keras_archive_outside_what_harlite_writes_is_refused(tmp_path: Path, change, message: str) -> None:
    path = _rezip(RELEASED / "model.keras", tmp_path / "model.keras", change)
    one_line_error(lambda: load_keras(path), message)


def test_other_formats_and_bombs_are_refused_before_tensorflow(tmp_path: Path) -> None:
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "saved_model" / "saved_model.pb").write_bytes(b"\x08\x01")
    one_line_error(lambda: load_keras(tmp_path / "saved_model"), "is a folder (a TensorFlow SavedModel?)")
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04\x95cos\nsystem\n")
    one_line_error(lambda: load_keras(tmp_path / "model.pkl"), "is not a zip .keras archive")
    bomb = zip_bomb(tmp_path / "bomb.keras", {"config.json": 16 << 20, "metadata.json": 16 << 20,
                                              "model.weights.h5": 1 << 30})  # fmt: skip
    one_line_error(lambda: load_keras(bomb), "would expand to 16 MiB, more than the 1 MiB")
    one_line_error(lambda: load_keras(b"PK\x03\x04broken"), "is a damaged zip")


def test_harlites_own_models_load_and_predict_the_same(tmp_path: Path, released_v2: Path) -> None:
    from harlite.pipeline.models import build_model
    from harlite.pipeline.train import save_model

    bundle = load_bundle(released_v2)
    released = bundle.keras_model()
    assert released.input_shape == (None, 128, 9) and released.output_shape == (None, 6)
    training = build_model("cnn_lstm", n_channels=9, conv=(4, 4), units=4)  # batch norm, ReLU layers
    training.compile("adam", "sparse_categorical_crossentropy")  # a compile_config in config.json
    save_model(training, tmp_path / "model.keras")
    x = np.random.default_rng(0).normal(size=(3, 128, 9)).astype(np.float32)
    np.testing.assert_allclose(load_keras(tmp_path / "model.keras").predict(x, verbose=0),
                               training.predict(x, verbose=0), rtol=1e-6)  # fmt: skip

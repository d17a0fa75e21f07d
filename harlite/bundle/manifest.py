"""manifest.json of a bundle: its schema (``SCHEMA``, format_version 2), validation and reading.

``read_manifest(path)`` reads at most ``MAX_MANIFEST_BYTES`` of strict UTF-8 JSON (no NaN/Infinity, no
repeated keys) and checks it against ``SCHEMA`` (types, lengths, ranges, cross-field relations,
``format_version``) and what the schema cannot say (the front end's digest, the fused int8 input
parameters). Any problem is one ``BundleError`` line naming the file or field and the fix. Add a field
by adding a line to ``SCHEMA``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harlite.codegen.targets import TARGETS
from harlite.core.frontend import FrontEndSpec, channel_unit, quantize_params
from harlite.core.protocol import LABEL_MAX_BYTES, MAX_LABELS, check_label
from harlite.errors import BundleError
from harlite.io.hashing import sha256_file
from harlite.io.limits import MiB, read_bounded
from harlite.io.schema import (
    Array,
    Checked,
    Const,
    Integer,
    Invalid,
    MapOf,
    Number,
    OneOf,
    Record,
    Ref,
    Text,
    no_duplicate_keys,
    no_json_constants,
    nullable,  # fmt: skip
    show,
)

FORMAT = "harlite-bundle"
MANIFEST = "manifest.json"
FORMAT_VERSION = 2
MAX_MANIFEST_BYTES = 1 * MiB
MAX_ARTIFACT_BYTES = 64 * MiB
REBUILD = "rebuild the bundle with 'harlite build' (or 'harlite convert RUN_DIR --out DIR')"
ALTERED = f"the manifest was altered or damaged: {REBUILD}"


# ---------------------------------------------------------------------------------------------------
# manifest.json, format_version 2


def _units(channels: list[str]) -> list[str]:
    return [channel_unit(c) for c in channels]


IMU_ACC = ({"name": "acc_x", "unit": "g"}, {"name": "acc_y", "unit": "g"}, {"name": "acc_z", "unit": "g"})
IMU_GYRO = (
    {"name": "gyro_x", "unit": "rad/s"},
    {"name": "gyro_y", "unit": "rad/s"},
    {"name": "gyro_z", "unit": "rad/s"},
)
# A label goes into C string literals and the board's serial lines: harlite.core.protocol.check_label is the rule.
LABEL = Checked(check_label, f"a label of 1 to {LABEL_MAX_BYTES} UTF-8 bytes without control characters, ',', "
                "'=', quotes, backslashes or surrounding spaces")  # fmt: skip
IDENTIFIER = Text(max_bytes=64, pattern=r"[A-Za-z0-9_.+-]+", hint="a name of letters, digits, '_', '.', '+', '-'")
CHANNEL = Text(max_bytes=32, pattern=r"[a-z][a-z0-9_]*", hint="a channel name such as 'body_acc_x'")
UNIT = Text(choices=("g", "rad/s"))
SHA256 = Text(max_bytes=64, min_bytes=64, pattern=r"[0-9a-f]{64}", hint="64 lowercase hex digits")
COUNT = Integer(0, 1 << 40)
FRACTION = Number(ge=0, le=1)
GROUP = Text(max_bytes=128, hint="a subject or group name")
ARTIFACT = Record({
    # what harlite writes: no spaces, quotes or '*/' (the name goes into generated C comments)
    "file": Text(max_bytes=255, pattern=r"[A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*",
                 hint="a relative path of letters, digits, '_', '.', '+', '-' and '/'"),
    "bytes": Integer(0, MAX_ARTIFACT_BYTES),
    "sha256": SHA256,
})  # fmt: skip
FRONTEND = Record({
    "rate_hz": Number(gt=0, equals=Ref("rate_hz")),
    "window": Integer(equals=Ref("window")),
    "hop": Integer(equals=Ref("hop")),
    "raw_channels": Array(Text(max_bytes=16), equals=Ref("raw_channels", lambda raw: [c["name"] for c in raw])),
    "channels": Array(CHANNEL, min_len=1, max_len=64, unique=True),
    "units": Array(UNIT, length=Ref("frontend.channels", len), equals=Ref("frontend.channels", _units)),
    "gravity_cutoff_hz": Number(gt=0, lt=Ref("rate_hz", lambda rate: rate / 2)),
    "gravity_order": Integer(1, 8),
    "gravity_sos": Array(Array(Number(), length=6), min_len=1, max_len=8),
    "gravity_zi": Array(Array(Number(), length=2), length=Ref("frontend.gravity_sos", len)),
    "digest": Text(max_bytes=16, min_bytes=16, pattern=r"[0-9a-f]{16}", hint="16 lowercase hex digits"),
})  # fmt: skip
PER_CHANNEL = Ref("frontend.channels", len)
OP = Text(max_bytes=64, pattern=r"[A-Z][A-Z0-9_]*", hint="a TFLite builtin op name")
NAME = Text(max_bytes=256, hint="a name of at most 256 bytes without control characters")
GROUPS = Array(GROUP, max_len=100_000)
# harlite.data.windows.DataSpec's fields (None: the data's default), then Split.info(): the split and label mapping.
DATASET = Record({
    "data": Text(max_bytes=4096, hint="'hapt' or a dataset folder"),
    "test_data": nullable(Text(max_bytes=4096, hint="a dataset folder")),
    "test_subjects": nullable(GROUPS),
    "val_subjects": nullable(Integer(0, 100_000)),
    "split_seed": Integer(-(1 << 63), (1 << 63) - 1),
    "rate_hz": nullable(Number(gt=0, le=100_000)),
    "window": nullable(Integer(8, 1 << 16)),
    "hop": nullable(Integer(1, 1 << 16)),
    "channels": nullable(Array(CHANNEL, min_len=1, max_len=64, unique=True)),
    "split": Text(choices=("subject", "recording", "time")),
    "train": GROUPS,
    "val": GROUPS,
    "test": GROUPS,
    "windows": MapOf(Text(choices=("train", "val", "test")), MapOf(NAME, COUNT, max_len=MAX_LABELS + 1)),
    "merge": MapOf(NAME, LABEL, max_len=4096),
    "ignore": Array(NAME, max_len=4096),
    "gravity": Text(choices=("included", "removed")),  # absent: included
}, optional=frozenset({"data", "test_data", "test_subjects", "val_subjects", "split_seed", "rate_hz", "window", "hop",
                       "channels", "split", "train", "val", "test", "windows", "merge", "ignore", "gravity"}))  # fmt: skip
QUANT_OUTPUT = {"scale": Number(gt=0), "zero_point": Integer(-128, 127)}
METRICS = Record({
    "accuracy": FRACTION,
    "macro_f1": FRACTION,
    "n": COUNT,
    "subjects": OneOf((Text(max_bytes=128), Array(GROUP)), "a name or a list of groups"),
    "split": Text(max_bytes=64),
}, optional=frozenset({"macro_f1", "n", "subjects", "split"}))  # fmt: skip

SCHEMA = Record({
    "format": Const(FORMAT),
    "format_version": Const(FORMAT_VERSION),
    "name": IDENTIFIER,
    "labels": Array(LABEL, min_len=2, max_len=MAX_LABELS, unique=True),
    "rate_hz": Number(gt=0, le=100_000),
    "window": Integer(8, 1 << 16),
    "hop": Integer(1, Ref("window")),
    "raw_channels": OneOf((Const(list(IMU_ACC)), Const(list(IMU_ACC + IMU_GYRO))),
                          "acc_x, acc_y, acc_z (unit g), optionally followed by gyro_x, gyro_y, gyro_z (rad/s)"),
    "frontend": FRONTEND,
    "normalization": Record({
        "mean": Array(Number(), length=PER_CHANNEL),
        "std": Array(Number(gt=0), length=PER_CHANNEL),
    }),
    "quantization": Record({
        "input": Record({**QUANT_OUTPUT, "input_mul": Array(Number(), length=PER_CHANNEL),
                         "input_add": Array(Number(), length=PER_CHANNEL)}),
        "output": Record(QUANT_OUTPUT),
    }),
    "artifacts": MapOf(Text(max_bytes=64, pattern=r"[a-z][a-z0-9_]*", hint="an artifact kind such as 'int8'"),
                       ARTIFACT, required=("int8",)),
    "ops": Array(OP, max_len=256),
    "tflm": Record({
        "arena_bytes": Integer(1, 256 * MiB),
        "arena_min_bytes": Integer(0, 256 * MiB),
        "arena_margin_bytes": Integer(0, 256 * MiB),
        "arena_step_bytes": Integer(1, 1 * MiB),
        "flash_bytes": Integer(0, MAX_ARTIFACT_BYTES),
        "measured_with": Text(max_bytes=256),
        "target": Text(choices=tuple(TARGETS)),  # absent: DEFAULT_TARGET
    }, optional=frozenset({"arena_bytes", "arena_min_bytes", "arena_margin_bytes", "arena_step_bytes", "flash_bytes",
                           "measured_with", "target"})),  # fmt: skip
    "engine": Record({"scratch_bytes": COUNT, "weight_bytes": COUNT, "macs": COUNT, "ops": Array(OP, max_len=4096),
                      "files": Array(Text(max_bytes=64, pattern=r"[A-Za-z0-9_.+-]+"), max_len=64)},
                     optional=frozenset({"scratch_bytes", "weight_bytes", "macs", "ops", "files"})),  # fmt: skip
    "model": Record({"architecture": IDENTIFIER, "params": COUNT, "macs_per_window": COUNT},
                    optional=frozenset({"params", "macs_per_window"})),  # fmt: skip
    "metrics": MapOf(Text(max_bytes=64, pattern=r"[a-z0-9_]+", hint="a variant name such as 'int8'"), METRICS),
    "dataset": DATASET,
    "build": Record({"command": Text(max_bytes=8192, min_bytes=0), "seed": Integer(0, 1 << 32)},
                    optional=frozenset({"command", "seed"})),  # fmt: skip
}, optional=frozenset({"ops", "tflm", "engine", "model", "metrics", "dataset", "build"}))  # fmt: skip


def validate(manifest: Any, where: str) -> None:
    """Check a parsed manifest against ``SCHEMA``; ``where`` (the file) starts the one-line BundleError."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{where} is not a JSON object: it is not a harlite bundle manifest; {REBUILD}.")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{where} is not a harlite bundle manifest (format {show(manifest.get('format'))}, "
                          f"expected {FORMAT!r}): point to a bundle made by 'harlite build' or 'harlite convert'.")  # fmt: skip
    version = manifest.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version != FORMAT_VERSION:
        if version < FORMAT_VERSION:
            raise BundleError(f"{where} has format_version {version}: the bundle was made by an older harlite, "
                              f"and this one reads format_version {FORMAT_VERSION}; {REBUILD}.")  # fmt: skip
        raise BundleError(f"{where} has format_version {version}: the bundle was made by a newer harlite "
                          f"(this one reads {FORMAT_VERSION}); upgrade harlite (pip install -U harlite).")  # fmt: skip
    try:
        SCHEMA.check(manifest, "", manifest)
    except Invalid as e:
        raise BundleError(f"{where}: field {e}; {ALTERED}.") from None
    _check_semantics(manifest, where)


def _check_semantics(manifest: dict[str, Any], where: str) -> None:
    """What the schema cannot say: the front end must be one this harlite builds the same way (filter,
    channels, digest), and the fused int8 input parameters must follow from normalization and scale."""
    recorded = manifest["frontend"]
    try:
        spec = FrontEndSpec.from_dict(recorded)
    except (ValueError, TypeError) as e:
        raise BundleError(f"{where}: field frontend: {e}; {ALTERED}.") from None
    if spec.digest() != recorded["digest"]:
        raise BundleError(f"{where}: field frontend.digest is {recorded['digest']!r} but this harlite's front end "
                          f"gives {spec.digest()!r}: the bundle was made by another front-end implementation; "
                          f"{REBUILD}.")  # fmt: skip
    quant, norm = manifest["quantization"]["input"], manifest["normalization"]
    with np.errstate(all="ignore"):
        mul, add = quantize_params(
            np.asarray(norm["mean"]), np.asarray(norm["std"]), quant["scale"], quant["zero_point"]
        )
    if not (np.isfinite(mul).all() and np.isfinite(add).all()):
        raise BundleError(f"{where}: field normalization.std holds a standard deviation too small to quantize "
                          f"with quantization.input.scale {quant['scale']:g}; {ALTERED}.")  # fmt: skip
    for key, values in (("input_mul", mul), ("input_add", add)):
        if not np.allclose(quant[key], values, rtol=1e-5, atol=1e-5):
            raise BundleError(f"{where}: field quantization.input.{key} does not follow from normalization and "
                              f"quantization.input.scale; {ALTERED}.")  # fmt: skip


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse ``path`` (at most MAX_MANIFEST_BYTES of strict UTF-8 JSON: no NaN/Infinity, no repeated
    keys) and validate it; a BundleError otherwise."""
    data = read_bounded(path, MAX_MANIFEST_BYTES, error=BundleError)
    try:
        manifest = json.loads(
            data.decode("utf-8"), parse_constant=no_json_constants, object_pairs_hook=no_duplicate_keys
        )
    except UnicodeDecodeError:
        raise BundleError(f"{path} is not UTF-8 text: it is not a bundle manifest; {REBUILD}.") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{path} is not valid JSON (line {e.lineno}: {e.msg}); {REBUILD}.") from None
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{path} is not valid manifest JSON ({e}); {REBUILD}.") from None
    validate(manifest, str(path))
    return manifest


def manifest_path(path: str | Path) -> Path:
    """The manifest file that ``path`` (a bundle folder or a manifest .json) means."""
    path = Path(path)
    if path.is_dir():
        found = path / MANIFEST
        if not found.exists():
            raise BundleError(f"{path} holds no {MANIFEST}: point to a bundle folder made by 'harlite build' "
                              "or 'harlite convert'.")  # fmt: skip
        return found
    if not path.exists():
        raise BundleError(
            f"{path} does not exist: point to a bundle folder made by 'harlite build' or 'harlite convert'."
        )
    if path.suffix.lower() != ".json":
        raise BundleError(f"{path} is not a bundle: pass the bundle's folder or its {MANIFEST} (made by "
                          "'harlite build' or 'harlite convert').")  # fmt: skip
    return path


def artifact_entry(path: str | Path, root: str | Path) -> dict[str, Any]:
    """Manifest entry for one artifact: file name relative to ``root``, bytes, sha256."""
    path = Path(path)
    return {"file": str(path.relative_to(root)), "bytes": path.stat().st_size,
            "sha256": sha256_file(path, MAX_ARTIFACT_BYTES)}  # fmt: skip

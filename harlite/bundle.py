"""The one loader of bundles: the manifest's schema, confined artifact paths, sha256, safe model loading.

``load_bundle(path)`` reads ``manifest.json`` (the folder or the file itself; at most
``MAX_MANIFEST_BYTES``), checks it against ``SCHEMA`` (types, lengths, ranges, cross-field relations,
``format_version``), confines every artifact to the bundle folder and verifies each one's size and
sha256, and that the TFLM C array is the int8 model byte for byte. Any problem is one ``BundleError``
line naming the file or field and the fix. What it returns, a ``Bundle``, hands out only verified
artifacts: ``path(kind)``, ``read(kind)``, ``keras_model()``.

A file is hashed once per process per file state (device, inode, size, mtime, ctime): replaying a
thousand windows does not re-hash the model a thousand times, and a file changed in between is hashed
again.

``load_keras(path or bytes)`` is the one way harlite loads a ``.keras`` model (a bundle's or a run
folder's): only the zip format with exactly ``config.json``, ``metadata.json`` and
``model.weights.h5``, every class in its config on an allowlist (``KERAS_CLASSES``: no ``Lambda``, no
module outside Keras), weights without external HDF5 links, size and ratio caps, then tf-keras with
``safe_mode=True`` on a private copy. An HDF5 file or SavedModel is refused before tf-keras sees it:
tf-keras ignores ``safe_mode`` for anything that is not a zip and runs the ``Lambda`` code inside.

The schema is data: ``SCHEMA`` below is a tree of ``Record``/``Array``/``Text``/``Integer``/``Number``
specs; a field that depends on another names it with ``Ref("dotted.path")`` (fields are checked in
order, so a Ref points to an earlier field). Add a field by adding a line.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from harlite.errors import BundleError, HarliteError
from harlite.limits import KiB, MiB, open_regular, read_bounded, zip_member
from harlite.manifest import FORMAT_VERSION, MANIFEST
from harlite.protocol import LABEL_MAX_BYTES, MAX_LABELS, check_label
from harlite.targets import DEFAULT_TARGET, TARGETS

FORMAT = "harlite-bundle"
MAX_MANIFEST_BYTES = 1 * MiB
MAX_ARTIFACT_BYTES = 64 * MiB
REBUILD = "rebuild the bundle with 'harlite build' (or 'harlite convert RUN_DIR --out DIR')"
ALTERED = f"the manifest was altered or damaged: {REBUILD}"


# ---------------------------------------------------------------------------------------------------
# The schema language


@dataclass(frozen=True)
class Ref:
    """The value of an earlier manifest field (dotted path), optionally transformed (``len``, ...)."""

    path: str
    transform: Callable[[Any], Any] | None = None

    def resolve(self, root: dict[str, Any]) -> Any:
        node: Any = root
        for part in self.path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return self.transform(node) if self.transform is not None else node

    def __str__(self) -> str:
        return self.path


Bound = float | int | Ref | None


class Spec:
    """One field's rule: ``check(value, where, root)`` raises ``_Invalid`` with what is wrong."""

    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        raise NotImplementedError

    def check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        self._check(value, where, root)
        if self.equals is not None:
            expected = self.equals.resolve(root)
            if expected is not None and value != expected:
                raise _Invalid(where, f"must equal {self.equals} ({_show(expected)}), got {_show(value)}")

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        raise NotImplementedError

    def _fail(self, value: Any, where: str, root: dict[str, Any]) -> None:
        raise _Invalid(where, f"must be {self.describe(root)}, got {_show(value)}")


class _Invalid(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where} {problem}")


def _bound(bound: Bound, root: dict[str, Any]) -> float | None:
    value = bound.resolve(root) if isinstance(bound, Ref) else bound
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _range_text(lo: Bound, hi: Bound, root: dict[str, Any], lo_open: bool = False, hi_open: bool = False) -> str:
    def name(bound: Bound) -> str:
        value = _bound(bound, root)
        return f"{bound} ({_number(value)})" if isinstance(bound, Ref) and value is not None else _number(value)

    parts = []
    if _bound(lo, root) is not None:
        parts.append(f"{'>' if lo_open else '>='} {name(lo)}")
    if _bound(hi, root) is not None:
        parts.append(f"{'<' if hi_open else '<='} {name(hi)}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Integer(Spec):
    """A JSON integer (not a bool, not 3.0) in ``lo..hi`` (either may be a Ref)."""

    lo: Bound = None
    hi: Bound = None
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        lo, hi = _bound(self.lo, root), _bound(self.hi, root)
        if lo is not None and hi is not None and not isinstance(self.lo, Ref) and not isinstance(self.hi, Ref):
            return f"an integer in {_number(lo)}..{_number(hi)}"
        limits = _range_text(self.lo, self.hi, root)
        return f"an integer {limits}" if limits else "an integer"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        lo, hi = _bound(self.lo, root), _bound(self.hi, root)
        if (not isinstance(value, int) or isinstance(value, bool) or (lo is not None and value < lo)
                or (hi is not None and value > hi)):  # fmt: skip
            self._fail(value, where, root)


@dataclass(frozen=True)
class Number(Spec):
    """A finite JSON number (int or float, not a bool) within the given bounds."""

    gt: Bound = None
    ge: Bound = None
    lt: Bound = None
    le: Bound = None
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        lo, hi = (self.gt, True) if self.gt is not None else (self.ge, False)
        top, top_open = (self.lt, True) if self.lt is not None else (self.le, False)
        limits = _range_text(lo, top, root, hi, top_open)
        return f"a finite number {limits}" if limits else "a finite number"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            self._fail(value, where, root)
        gt, ge, lt, le = (_bound(b, root) for b in (self.gt, self.ge, self.lt, self.le))
        if ((gt is not None and not value > gt) or (ge is not None and not value >= ge)
                or (lt is not None and not value < lt) or (le is not None and not value <= le)):  # fmt: skip
            self._fail(value, where, root)


_FORBIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


@dataclass(frozen=True)
class Text(Spec):
    """A string of at most ``max_bytes`` UTF-8 bytes without control or format characters; optionally
    matching ``pattern`` (whole string), one of ``choices``, or free of the characters in ``forbid``."""

    max_bytes: int = 256
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    forbid: str = ""
    min_bytes: int = 1
    hint: str | None = None
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        if self.hint:
            return self.hint
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        extra = f" without {', '.join(repr(c) for c in self.forbid)}" if self.forbid else ""
        return f"text of {self.min_bytes} to {self.max_bytes} bytes without control characters{extra}"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if not isinstance(value, str) or any(unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in value):
            self._fail(value, where, root)
        if self.choices:
            if value not in self.choices:
                self._fail(value, where, root)
            return
        size = len(value.encode("utf-8"))
        if (not self.min_bytes <= size <= self.max_bytes or any(c in value for c in self.forbid)
                or (self.pattern is not None and not re.fullmatch(self.pattern, value))):  # fmt: skip
            self._fail(value, where, root)


@dataclass(frozen=True)
class Const(Spec):
    """Exactly ``value``."""

    value: Any
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        return _show(self.value)

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if value != self.value or type(value) is not type(self.value):
            self._fail(value, where, root)


@dataclass(frozen=True)
class Array(Spec):
    """A JSON list of ``item``; its length in ``min_len..max_len`` or exactly ``length`` (int or Ref)."""

    item: Spec
    min_len: int = 0
    max_len: int = 4096
    length: int | Ref | None = None
    unique: bool = False
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        n = self.length.resolve(root) if isinstance(self.length, Ref) else self.length
        count = (f"exactly {n}" + (f" (the length of {self.length.path})" if isinstance(self.length, Ref) else "")
                 if n is not None else f"{self.min_len} to {self.max_len}")  # fmt: skip
        return f"a list of {count}{' distinct' if self.unique else ''} items"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        n = self.length.resolve(root) if isinstance(self.length, Ref) else self.length
        if not isinstance(value, list) or (n is not None and len(value) != n):
            self._fail(value, where, root)
        if n is None and not self.min_len <= len(value) <= self.max_len:
            self._fail(value, where, root)
        for i, item in enumerate(value):
            self.item.check(item, f"{where}[{i}]", root)
        if self.unique:
            seen = [json.dumps(v, sort_keys=True) for v in value]
            duplicate = next((value[i] for i, s in enumerate(seen) if s in seen[:i]), None)
            if duplicate is not None:
                raise _Invalid(where, f"must hold distinct items, but {_show(duplicate)} appears twice")


@dataclass(frozen=True)
class Record(Spec):
    """A JSON object with ``fields`` (checked in order); those in ``optional`` may be absent. Other keys
    are allowed (a newer harlite may add fields) but not checked."""

    fields: dict[str, Spec]
    optional: frozenset[str] = frozenset()
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        return "an object with " + ", ".join(self.fields)

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if not isinstance(value, dict):
            self._fail(value, where, root)
        for name, spec in self.fields.items():
            inner = f"{where}.{name}" if where else name
            if name not in value:
                if name in self.optional:
                    continue
                raise _Invalid(inner, "is missing")
            spec.check(value[name], inner, root)


@dataclass(frozen=True)
class MapOf(Spec):
    """A JSON object whose keys match ``key`` and whose values match ``value``; ``required`` keys must be there."""

    key: Text
    value: Spec
    required: tuple[str, ...] = ()
    max_len: int = 256
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        return f"an object of at most {self.max_len} entries"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if not isinstance(value, dict) or len(value) > self.max_len:
            self._fail(value, where, root)
        for name in self.required:
            if name not in value:
                raise _Invalid(f"{where}.{name}", "is missing")
        for name, item in value.items():
            try:
                self.key.check(name, "", root)
            except _Invalid:
                raise _Invalid(where, f"has the key {_show(name)}, which must be {self.key.describe(root)}") from None
            self.value.check(item, f"{where}.{name}", root)


@dataclass(frozen=True)
class OneOf(Spec):
    """A value matching one of ``options`` (tried in order); ``hint`` says what is expected."""

    options: tuple[Spec, ...]
    hint: str
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        return self.hint

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        for option in self.options:
            try:
                option.check(value, where, root)
                return
            except _Invalid:
                continue
        self._fail(value, where, root)


@dataclass(frozen=True)
class Checked(Spec):
    """A value that ``rule`` (a function raising a HarliteError for a bad value) returns unchanged."""

    rule: Callable[[Any], Any]
    hint: str
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        return self.hint

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        try:
            accepted = self.rule(value) == value
        except HarliteError:
            accepted = False
        if not accepted:
            self._fail(value, where, root)


def nullable(spec: Spec) -> OneOf:
    """``spec`` or JSON null."""
    return OneOf((Const(None), spec), f"null or {spec.describe({})}")


def _number(value: Any) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _show(value: Any) -> str:
    """A short, one-line rendering of a value for a message (control characters escaped)."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------------
# manifest.json, format_version 2


def _units(channels: list[str]) -> list[str]:
    from harlite.frontend import channel_unit

    return [channel_unit(c) for c in channels]


IMU_ACC = ({"name": "acc_x", "unit": "g"}, {"name": "acc_y", "unit": "g"}, {"name": "acc_z", "unit": "g"})
IMU_GYRO = ({"name": "gyro_x", "unit": "rad/s"}, {"name": "gyro_y", "unit": "rad/s"}, {"name": "gyro_z", "unit": "rad/s"})
# A label goes into C string literals and the board's serial lines: harlite.protocol.check_label is the rule.
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
# harlite.windows.DataSpec's fields (None: the data's default), then Split.info(): the split and label mapping.
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
}, optional=frozenset({"data", "test_data", "test_subjects", "val_subjects", "split_seed", "rate_hz", "window", "hop",
                       "channels", "split", "train", "val", "test", "windows", "merge", "ignore"}))  # fmt: skip
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
        raise BundleError(f"{where} is not a harlite bundle manifest (format {_show(manifest.get('format'))}, "
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
    except _Invalid as e:
        raise BundleError(f"{where}: field {e}; {ALTERED}.") from None
    _check_semantics(manifest, where)


def _check_semantics(manifest: dict[str, Any], where: str) -> None:
    """What the schema cannot say: the front end must be one this harlite builds the same way (filter,
    channels, digest), and the fused int8 input parameters must follow from normalization and scale."""
    import numpy as np

    from harlite.frontend import FrontEndSpec, quantize_params

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
        mul, add = quantize_params(np.asarray(norm["mean"]), np.asarray(norm["std"]), quant["scale"], quant["zero_point"])
    if not (np.isfinite(mul).all() and np.isfinite(add).all()):
        raise BundleError(f"{where}: field normalization.std holds a standard deviation too small to quantize "
                          f"with quantization.input.scale {quant['scale']:g}; {ALTERED}.")  # fmt: skip
    for key, values in (("input_mul", mul), ("input_add", add)):
        if not np.allclose(quant[key], values, rtol=1e-5, atol=1e-5):
            raise BundleError(f"{where}: field quantization.input.{key} does not follow from normalization and "
                              f"quantization.input.scale; {ALTERED}.")  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Reading the manifest and the artifacts


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicate = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if duplicate is not None:
        raise ValueError(f"the key {duplicate!r} appears twice in one object")
    return dict(pairs)


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse ``path`` (at most MAX_MANIFEST_BYTES of strict UTF-8 JSON: no NaN/Infinity, no repeated
    keys) and validate it; a BundleError otherwise."""
    data = read_bounded(path, MAX_MANIFEST_BYTES, error=BundleError)
    try:
        manifest = json.loads(data.decode("utf-8"), parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
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
        raise BundleError(f"{path} does not exist: point to a bundle folder made by 'harlite build' or 'harlite convert'.")
    if path.suffix.lower() != ".json":
        raise BundleError(f"{path} is not a bundle: pass the bundle's folder or its {MANIFEST} (made by "
                          "'harlite build' or 'harlite convert').")  # fmt: skip
    return path


# (path, device, inode, size, mtime_ns, ctime_ns) -> sha256 of the bytes that file state held
_VERIFIED: dict[tuple[str, int, int, int, int, int], str] = {}


def _state(path: Path, st: os.stat_result) -> tuple[str, int, int, int, int, int]:
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: str | Path, max_bytes: int | None = MAX_ARTIFACT_BYTES) -> str:
    """sha256 of a regular file of at most ``max_bytes`` (None: any size), remembered for this process
    while the file's state (inode, size, mtime, ctime) is unchanged."""
    path = Path(path)
    with open_regular(path, BundleError) as f:
        st = os.fstat(f.fileno())
        key = _state(path, st)
        if key not in _VERIFIED:
            if max_bytes is not None and st.st_size > max_bytes:
                raise BundleError(f"{path} is {st.st_size} bytes, more than the {max_bytes} harlite hashes.")
            digest = hashlib.sha256()
            while chunk := f.read(MiB):
                digest.update(chunk)
            if _state(path, os.fstat(f.fileno())) != key:  # written to while hashed: remember nothing
                return digest.hexdigest()
            _VERIFIED[key] = digest.hexdigest()
        return _VERIFIED[key]


@dataclass
class Bundle:
    """A validated bundle: its folder, its manifest, and verified access to its artifacts."""

    root: Path  # the bundle folder, resolved
    manifest_file: Path
    manifest: dict[str, Any]
    _checked_sources: bool = field(default=False, repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest["labels"])

    @property
    def kinds(self) -> tuple[str, ...]:
        """The artifact kinds the manifest lists."""
        return tuple(self.manifest["artifacts"])

    def has(self, kind: str) -> bool:
        return kind in self.manifest["artifacts"]

    def frontend(self) -> Any:
        """The bundle's ``harlite.frontend.FrontEndSpec`` (checked at load)."""
        from harlite.frontend import FrontEndSpec

        return FrontEndSpec.from_dict(self.manifest["frontend"])

    def entry(self, kind: str) -> dict[str, Any]:
        """The manifest's record of artifact ``kind``; a clear error when the bundle has none."""
        if kind not in self.manifest["artifacts"]:
            raise BundleError(f"{self.manifest_file} lists no '{kind}' artifact: {REBUILD}.")
        return self.manifest["artifacts"][kind]

    def _resolve(self, kind: str) -> Path:
        """The artifact's path, confined to the bundle folder (checked before any file is opened)."""
        name = self.entry(kind)["file"]
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise BundleError(f"{self.manifest_file}: artifacts.{kind}.file {_show(name)} leaves the bundle folder "
                              f"(artifact paths stay inside it); {ALTERED}.")  # fmt: skip
        path = self.root.joinpath(*pure.parts)
        try:
            resolved = path.resolve(strict=True)
        except FileNotFoundError:
            raise BundleError(f"{path} is missing: the bundle is incomplete or was altered; {REBUILD}.") from None
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise BundleError(f"{path} cannot be resolved ({e}); {ALTERED}.") from None
        if not resolved.is_relative_to(self.root):
            raise BundleError(f"{path} is a link to {resolved}, outside the bundle folder; {ALTERED}.")
        return resolved

    def _check(self, kind: str, path: Path, size: int, digest: str) -> None:
        entry = self.entry(kind)
        if size != entry["bytes"]:
            raise BundleError(f"{path} is {size} bytes but the manifest records {entry['bytes']}: the bundle was "
                              f"altered or is incomplete; {REBUILD}.")  # fmt: skip
        if digest != entry["sha256"]:
            raise BundleError(f"{path} does not match its sha256 in the manifest (the file holds {digest[:16]}..., "
                              f"the manifest {entry['sha256'][:16]}...): the bundle was altered or is incomplete; "
                              f"{REBUILD}.")  # fmt: skip

    def _verified_path(self, kind: str) -> Path:
        path = self._resolve(kind)
        with open_regular(path, BundleError) as f:  # a regular file (no device, FIFO or folder)
            size = os.fstat(f.fileno()).st_size
        self._check(kind, path, size, file_sha256(path) if size == self.entry(kind)["bytes"] else "")
        return path

    def _verified_bytes(self, kind: str) -> bytes:
        path = self._resolve(kind)
        expected = self.entry(kind)["bytes"]
        with open_regular(path, BundleError) as f:
            before = os.fstat(f.fileno())
            data = f.read(expected + 1) if before.st_size == expected else b""
            unchanged = _state(path, before) == _state(path, os.fstat(f.fileno()))
        known = unchanged and _VERIFIED.get(_state(path, before)) == self.entry(kind)["sha256"]
        self._check(kind, path, before.st_size if not data else len(data),
                    self.entry(kind)["sha256"] if known else hashlib.sha256(data).hexdigest())  # fmt: skip
        if unchanged:
            _VERIFIED[_state(path, before)] = self.entry(kind)["sha256"]
        return data

    @property
    def target(self) -> str:
        """The TFLM build (``harlite.targets``) the bundle's model was written for."""
        return self.manifest.get("tflm", {}).get("target", DEFAULT_TARGET)

    def path(self, kind: str) -> Path:
        """The verified path of artifact ``kind``: inside the bundle, a regular file, size and sha256 as
        recorded (and for generated C sources: what harlite makes of the int8 model and the manifest)."""
        path = self._verified_path(kind)
        if kind in SOURCE_KINDS:
            self.check_sources()
        return path

    def read(self, kind: str) -> bytes:
        """The verified bytes of artifact ``kind``, read once: what is checked is what is returned."""
        data = self._verified_bytes(kind)
        if kind in SOURCE_KINDS:
            self.check_sources()
        return data

    def verify(self) -> None:
        """Check every listed artifact (confined, regular, size, sha256) and the generated C sources."""
        for kind in self.manifest["artifacts"]:
            self._verified_path(kind)
        self.check_sources()

    def check_sources(self) -> None:
        """The generated C sources (TFLM's model array, config header and op resolver; the C engine's files)
        must be what ``harlite.codegen.generated_sources`` makes of the verified int8 model and the
        manifest, byte for byte but for their first comment; the engine figures must be the engine's."""
        kinds = [k for k in SOURCE_KINDS if self.has(k)]
        if self._checked_sources or not kinds:
            return
        key = (json.dumps(self.manifest, sort_keys=True), *(self.entry(k)["sha256"] for k in ("int8", *kinds)))
        if key not in _SOURCES_MATCH:
            from harlite.codegen import generated_sources, model_data_sources

            model = self._verified_bytes("int8")
            self._compare_sources([k for k in kinds if k in MODEL_ARRAY_KINDS],
                                  dict(zip(MODEL_ARRAY_KINDS, model_data_sources(model, ""))))  # fmt: skip
            others = [k for k in kinds if k not in MODEL_ARRAY_KINDS]
            expected, figures = generated_sources(self.manifest, model) if others else ({}, {})
            self._compare_sources(others, expected)
            recorded = self.manifest.get("engine", {})
            changed = [k for k, v in recorded.items() if k in figures and figures[k] != v]
            if any(k.startswith("engine_") for k in kinds) and changed:
                raise BundleError(f"{self.manifest_file}: field engine.{changed[0]} is {_show(recorded[changed[0]])} "
                                  f"but the C engine of the int8 model gives {_show(figures[changed[0]])}; {ALTERED}.")  # fmt: skip
            _SOURCES_MATCH.add(key)
        for kind in ("int8", *kinds):
            self._verified_path(kind)  # the files still hold what was compared
        self._checked_sources = True

    def _compare_sources(self, kinds: list[str], expected: dict[str, str]) -> None:
        for kind in kinds:
            text = self._verified_bytes(kind).decode("utf-8", errors="replace")
            if _without_comment(text) != _without_comment(expected[kind]):
                what = ("the model array differs from the int8 model byte for byte" if kind in MODEL_ARRAY_KINDS
                        else "it differs from what this harlite generates from the int8 model and the manifest")
                raise BundleError(f"{self.root / self.entry(kind)['file']} is not the C source of "
                                  f"{self.entry('int8')['file']} ({what}): the bundle was altered or made by "
                                  f"another harlite; {REBUILD}.")  # fmt: skip

    def keras_model(self) -> Any:
        """The bundle's float Keras model, loaded safely (``load_keras``) from its verified bytes."""
        return load_keras(self.read("keras"), str(self.root / self.entry("keras")["file"]))


# The generated C sources, by artifact kind (harlite.codegen.ARTIFACTS and ENGINE_ARTIFACTS).
SOURCE_KINDS = ("tflm_model_header", "tflm_model_data", "tflm_config", "tflm_op_resolver", "engine_header",
                "engine_model", "engine_kernels_header", "engine_kernels")  # fmt: skip
MODEL_ARRAY_KINDS = SOURCE_KINDS[:2]
# (manifest JSON, int8 and sources' sha256...) whose C sources were found to be what harlite generates
_SOURCES_MATCH: set[tuple[str, ...]] = set()


def _without_comment(source: str) -> str | None:
    """A generated source without its comment line (the first line that is one whole ``/* ... */``
    comment, among the first three); None if it has none (or the comment could end early and hide code)."""
    lines = source.split("\n")
    for i, line in enumerate(lines[:3]):
        if line.startswith("/* ") and line.endswith(" */") and "*/" not in line[3:-3]:
            return "\n".join(lines[:i] + lines[i + 1 :])
    return None


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """The bundle at ``path`` (its folder or manifest.json), validated; with ``verify`` (the default)
    every artifact is checked now (paths, sizes, sha256, the C array), else each on first use."""
    file = manifest_path(path)
    manifest = read_manifest(file)
    bundle = Bundle(root=file.parent.resolve(), manifest_file=file, manifest=manifest)
    for kind in manifest["artifacts"]:
        bundle._resolve(kind)  # every path confined, even with verify=False
    if verify:
        bundle.verify()
    return bundle


# ---------------------------------------------------------------------------------------------------
# Safe Keras loading

KERAS_MEMBERS = {"config.json": 1 * MiB, "metadata.json": 64 * KiB, "model.weights.h5": MAX_ARTIFACT_BYTES}
MAX_KERAS_RATIO = 200
# module -> class names a harlite model's config.json may hold (harlite.models, saved by harlite.train.save_model;
# QAT saves the plain deployable model). Everything else, Lambda above all, is refused.
KERAS_CLASSES: dict[str, frozenset[str]] = {
    "keras.layers": frozenset({"InputLayer", "Conv1D", "BatchNormalization", "ReLU", "LSTM", "Dense"}),
    "keras.initializers": frozenset({"GlorotUniform", "Orthogonal", "Zeros", "Ones"}),
    "keras.optimizers": frozenset({"Adam"}),  # in compile_config, which harlite never compiles from
    "keras.optimizers.schedules": frozenset({"CosineDecay"}),
    "tf_keras.src.engine.functional": frozenset({"Functional"}),
}
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def load_keras(source: str | Path | bytes, name: str | None = None) -> Any:
    """A harlite Keras model from a ``.keras`` file or its bytes, without running code from the file.

    Refused with a BundleError: anything but the zip ``.keras`` format (HDF5 ``.h5``, a SavedModel
    folder, a pickle), other members than config/metadata/weights, any class outside ``KERAS_CLASSES``
    (``Lambda``, a module to import), HDF5 external links in the weights, archives over the caps.
    """
    if isinstance(source, bytes):
        data, name = source, name or "the model"
    else:
        path = Path(source)
        name = name or str(path)
        if path.is_dir():
            raise BundleError(f"{name} is a folder (a TensorFlow SavedModel?): harlite loads only the zip .keras "
                              "format that 'harlite train' writes, since other formats can run code.")  # fmt: skip
        data = read_bounded(path, MAX_ARTIFACT_BYTES, compressed=False, error=BundleError)
    check_keras_archive(data, name)
    from harlite.tf import keras

    with tempfile.TemporaryDirectory(prefix="harlite-keras-") as tmp:
        private = Path(tmp) / "model.keras"
        private.write_bytes(data)  # load exactly the checked bytes, from a folder only this process uses
        try:
            model = keras().models.load_model(private, compile=False, safe_mode=True, custom_objects={})
        except Exception as e:  # tf-keras raises many types for a bad file; none may become a traceback
            first = str(e).splitlines()[0] if str(e) else ""
            raise BundleError(f"{name} is not a loadable harlite Keras model ({type(e).__name__}: {first[:200]}); "
                              f"{REBUILD}.") from None  # fmt: skip
    return model


def check_keras_archive(data: bytes, name: str) -> dict[str, bytes]:
    """The members of a ``.keras`` zip if it is one harlite may load (see ``load_keras``); else BundleError."""
    if data.startswith(HDF5_MAGIC):
        raise BundleError(f"{name} is an HDF5 (.h5) Keras file, not the zip .keras format: harlite refuses it "
                          "because loading HDF5 models can run code stored in them; re-save the model as .keras "
                          "with harlite.")  # fmt: skip
    if not data.startswith(ZIP_MAGIC):
        raise BundleError(f"{name} is not a zip .keras archive (it starts with {data[:8]!r}): harlite loads only "
                          "the .keras format that 'harlite train' writes.")  # fmt: skip
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise BundleError(f"{name} is a damaged zip ({e}): {REBUILD}.") from None
    names = [i.filename for i in infos]
    if sorted(names) != sorted(KERAS_MEMBERS):
        extra = sorted(set(names) - set(KERAS_MEMBERS)) or sorted(set(KERAS_MEMBERS) - set(names))
        raise BundleError(f"{name} holds {names[:6]}: a harlite .keras holds exactly {', '.join(KERAS_MEMBERS)} "
                          f"(unexpected or missing: {', '.join(extra) or 'a repeated member'}); {REBUILD}.")  # fmt: skip
    members = {}
    for info in infos:
        with zip_member(archive, info, KERAS_MEMBERS[info.filename], MAX_KERAS_RATIO, name, BundleError) as f:
            members[info.filename] = f.read()
    try:
        config = json.loads(members["config.json"], parse_constant=_no_constants)
        json.loads(members["metadata.json"])
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{name}: its config.json or metadata.json is not valid JSON ({e}); {REBUILD}.") from None
    for problem in _config_problems(config):
        raise BundleError(f"{name} is refused: its config.json {problem}; harlite loads only its own "
                          f"architectures, which are plain Keras layers (no Lambda, no custom code).")  # fmt: skip
    _check_weights(members["model.weights.h5"], name)
    return members


def _config_problems(config: Any, path: str = "") -> Iterable[str]:
    """What in a Keras config.json is outside ``KERAS_CLASSES`` (first problem first)."""
    if isinstance(config, list):
        for i, item in enumerate(config):
            yield from _config_problems(item, f"{path}[{i}]")
        return
    if not isinstance(config, dict):
        return
    if "class_name" in config:
        module, cls = config.get("module"), config["class_name"]
        registered = config.get("registered_name")
        if not isinstance(module, str) or not isinstance(cls, str) or cls not in KERAS_CLASSES.get(module, ()):
            yield f"uses {_show(cls)} from module {_show(module)} at {path or 'the top'}"
        elif registered not in (None, cls):
            yield f"registers {_show(registered)} for {cls} at {path or 'the top'}"
    for key in ("function", "function_type", "module_name"):
        if key in config:
            yield f"holds a '{key}' entry (code) at {path or 'the top'}"
    for key, value in config.items():
        yield from _config_problems(value, f"{path}.{key}" if path else key)


def _check_weights(data: bytes, name: str) -> None:
    """The weights file must be plain HDF5 groups and datasets: no external links, external storage or
    virtual datasets (which make HDF5 read other files)."""
    import h5py

    problems: list[str] = []

    def visit(item_name: str, link: Any) -> None:
        if not isinstance(link, h5py.HardLink | h5py.SoftLink):
            problems.append(f"{item_name} is a {type(link).__name__}")

    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            h5.visititems_links(visit)
            for item_name in _datasets(h5):
                dataset = h5[item_name]
                if dataset.external or dataset.is_virtual:
                    problems.append(f"{item_name} stores its data in other files")
    except OSError as e:
        raise BundleError(f"{name}: model.weights.h5 is not valid HDF5 ({e}); {REBUILD}.") from None
    if problems:
        raise BundleError(f"{name} is refused: in model.weights.h5, {problems[0]} (HDF5 links out of the file "
                          f"can read other files); {REBUILD}.")  # fmt: skip


def _datasets(h5: Any) -> list[str]:
    import h5py

    found: list[str] = []
    h5.visititems(lambda item_name, obj: found.append(item_name) if isinstance(obj, h5py.Dataset) else None)
    return found


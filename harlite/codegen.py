"""The C sources of a bundle's int8 model: for TFLite Micro (the model array, the config header, the op
resolver) and for harlite's own C engine.

``write_sources(bundle)`` checks the model against the bundle's TFLM target (``harlite.targets``) and
writes into ``bundle/tflm/`` and ``bundle/engine/`` (and the same files into a firmware folder):

- ``harlite_model_data.h/.cpp``: the int8 .tflite byte for byte as an ``alignas(16) const`` array (const,
  so it stays in flash) and its length ``HARLITE_MODEL_DATA_LEN``;
- ``harlite_model_config.h``: C99 macros with everything the firmware must not hard-code (see
  ``config_header``), including the tensor arena size;
- ``harlite_op_resolver.h``: a ``tflite::MicroMutableOpResolver<N>`` with exactly the model's ops;
- ``engine/``: the dependency-free C99 engine (``harlite.engine``), bit-exact with TFLM, for a firmware
  built without TFLM.

The arena size is measured, not guessed: the smallest arena with which TFLite Micro's interpreter
allocates and invokes the model, found by bisection, each probe in a subprocess (a too-small arena
can make TFLM fail a check in its LSTM kernel and crash the process), plus a stated margin.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from harlite.errors import BundleError
from harlite.frontend import IMU6, channel_map, quantize_params
from harlite.manifest import MANIFEST, MARKER, artifact_entry, atomic_write_text, check_replaceable, write_json
from harlite.targets import OP_RESOLVER_METHODS, model_ops, require_compatible

TFLM_DIR = "tflm"
DATA_H, DATA_CPP = "harlite_model_data.h", "harlite_model_data.cpp"
CONFIG_H, RESOLVER_H = "harlite_model_config.h", "harlite_op_resolver.h"
# manifest artifact key -> file in tflm/
ARTIFACTS = {"tflm_model_header": DATA_H, "tflm_model_data": DATA_CPP, "tflm_config": CONFIG_H,
             "tflm_op_resolver": RESOLVER_H}  # fmt: skip
ENGINE_DIR = "engine"
# manifest artifact key -> file in engine/
ENGINE_ARTIFACTS = {"engine_header": "harlite_engine.h", "engine_model": "harlite_engine_model.c",
                    "engine_kernels_header": "harlite_engine_kernels.h", "engine_kernels": "harlite_engine_kernels.c"}  # fmt: skip
ARENA_STEP = 16  # TFLM aligns its allocations to 16 bytes
# The margin over the measured minimum: a quarter of it, at least 1 KiB. The probes run TFLM's reference
# kernels on a 64-bit host; a board runs optimized kernels (CMSIS-NN's LSTM keeps 8 int32 kernel-sum
# vectors per LSTM, 32 bytes per unit, and its convolutions an im2col scratch) with 32-bit structs.
ARENA_MARGIN_FRACTION, ARENA_MARGIN_MIN = 0.25, 1024

# Run in a subprocess: allocate and invoke a model in TFLM with a given arena; exit 0 on success.
_PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
interpreter = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
details = interpreter.get_input_details(0)
for _ in range(2):
    interpreter.reset()
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
    interpreter.invoke()
"""


def op_resolver_header(ops: list[str], comment: str) -> str:
    """``harlite_op_resolver.h``: ``HarliteOpResolver`` and ``harlite_register_ops`` for exactly ``ops``."""
    missing = [op for op in ops if op not in OP_RESOLVER_METHODS]
    if missing:
        raise BundleError(f"no tflite::MicroMutableOpResolver method is known for {', '.join(missing)}: "
                                   "change the model to use ops TFLite Micro supports.")  # fmt: skip
    adds = "".join(f"  if (resolver.{OP_RESOLVER_METHODS[op]}() != kTfLiteOk) return kTfLiteError;\n" for op in ops)
    return (
        f"/* {comment} */\n"
        "#ifndef HARLITE_OP_RESOLVER_H\n#define HARLITE_OP_RESOLVER_H\n\n"
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        f"/* The model's ops: {', '.join(ops)}. */\n"
        f"#define HARLITE_OP_COUNT {len(ops)}\n\n"
        "typedef tflite::MicroMutableOpResolver<HARLITE_OP_COUNT> HarliteOpResolver;\n\n"
        "/* Registers exactly the model's ops; kTfLiteOk, or kTfLiteError at the first failure. */\n"
        "inline TfLiteStatus harlite_register_ops(HarliteOpResolver& resolver) {\n"
        f"{adds}"
        "  return kTfLiteOk;\n}\n\n#endif /* HARLITE_OP_RESOLVER_H */\n"
    )


def model_data_sources(model: bytes, comment: str) -> tuple[str, str]:
    """(header, source) of the model as ``alignas(16) const unsigned char harlite_model_data[]``."""
    header = (
        f"/* {comment} */\n"
        "#ifndef HARLITE_MODEL_DATA_H\n#define HARLITE_MODEL_DATA_H\n\n"
        "/* The int8 .tflite model, byte for byte; const, so it stays in flash. */\n"
        f"#define HARLITE_MODEL_DATA_LEN {len(model)}\n"
        "extern const unsigned char harlite_model_data[HARLITE_MODEL_DATA_LEN];\n\n"
        "#endif /* HARLITE_MODEL_DATA_H */\n"
    )
    rows = (", ".join(f"0x{b:02x}" for b in model[i : i + 12]) for i in range(0, len(model), 12))
    source = (
        f"/* {comment} */\n"
        f'#include "{DATA_H}"\n\n'
        "alignas(16) const unsigned char harlite_model_data[HARLITE_MODEL_DATA_LEN] = {\n"
        + "".join(f"    {row},\n" for row in rows)
        + "};\n"
    )
    return header, source


def config_header(manifest: dict[str, Any], comment: str = "") -> str:
    """``harlite_model_config.h`` (C99, macros only) of a validated manifest (``harlite.bundle``).

    The arena size comes from the manifest's ``tflm.arena_bytes`` (set by ``write_sources``).
    """
    if "arena_bytes" not in manifest.get("tflm", {}):
        raise BundleError("the manifest records no tflm.arena_bytes: write the bundle's C sources with "
                          "'harlite convert BUNDLE'.")  # fmt: skip
    fe, quant, tflm = manifest["frontend"], manifest["quantization"], manifest["tflm"]
    channels = list(fe["channels"])
    raw = tuple(fe.get("raw_channels", IMU6))
    kinds, sources = zip(*(channel_map(c, raw) for c in channels))
    mul, add = quantize_params(
        np.asarray(manifest["normalization"]["mean"]), np.asarray(manifest["normalization"]["std"]),
        quant["input"]["scale"], quant["input"]["zero_point"],
    )  # fmt: skip
    units = fe.get("units") or ["rad/s" if "gyro" in c else "g" for c in channels]
    rate = float(manifest["rate_hz"])
    lines = [
        ("RATE_HZ", str(int(rate)) if rate.is_integer() else _c_float(rate), None),
        ("WINDOW", _c_int(manifest["window"]), None),
        ("HOP", _c_int(manifest["hop"]), None),
        ("NUM_RAW", _c_int(len(raw)), "raw sensor values per sample, in g and rad/s"),
        ("RAW_NAMES", _c_string(",".join(raw)), "their CSV columns"),
        ("NUM_CHANNELS", _c_int(len(channels)), None),
        ("NUM_CLASSES", _c_int(len(manifest["labels"])), None),
        ("CH_RAW", "0", "channel kinds"),
        ("CH_BODY", "1", "raw minus its gravity estimate"),
        ("CH_GRAVITY", "2", "the gravity estimate itself (low-pass output)"),
        ("CHANNEL_KIND", _c_list(str(k) for k in kinds), None),
        ("CHANNEL_SOURCE", _c_list(str(s) for s in sources), "raw index per channel"),
        ("CHANNEL_NAMES", _c_list(_c_string(c) for c in channels), None),
        ("CHANNEL_UNITS", _c_list(_c_string(u) for u in units), None),
        ("LABELS", _c_list(_c_string(label) for label in manifest["labels"]), None),
        ("GRAVITY_SECTIONS", _c_int(len(fe["gravity_sos"])), None),
        ("GRAVITY_SOS", _c_list(_c_list(map(_c_float, s)) for s in fe["gravity_sos"]), "per section, scipy sos layout"),
        ("GRAVITY_ZI", _c_list(_c_list(map(_c_float, z)) for z in fe["gravity_zi"]), "steady state for a unit input"),
        ("INPUT_SCALE", _c_float(quant["input"]["scale"]), None),
        ("INPUT_ZERO_POINT", _c_int(quant["input"]["zero_point"]), None),
        ("INPUT_MUL", _c_list(map(_c_float, mul)), "q = floor(v*MUL + ADD + 0.5), clamped"),
        ("INPUT_ADD", _c_list(map(_c_float, add)), None),
        ("OUTPUT_SCALE", _c_float(quant["output"]["scale"]), None),
        ("OUTPUT_ZERO_POINT", _c_int(quant["output"]["zero_point"]), None),
        ("ARENA_BYTES", _c_int(tflm["arena_bytes"]), _arena_note(tflm)),
    ]
    body = "".join(
        f"#define HARLITE_{name} {value}" + (f"  /* {note} */" if note else "") + "\n" for name, value, note in lines
    )
    return f"#ifndef HARLITE_MODEL_CONFIG_H\n#define HARLITE_MODEL_CONFIG_H\n/* {_c_comment(comment)} */\n{body}#endif\n"


def _arena_note(tflm: dict[str, Any]) -> str:
    if "arena_min_bytes" not in tflm or "arena_margin_bytes" not in tflm:
        return "measured with TFLM"
    return f"measured with TFLM: minimum {tflm['arena_min_bytes']} + margin {tflm['arena_margin_bytes']}"


def probe_arena(model_path: str | Path, arena_bytes: int) -> subprocess.CompletedProcess:
    """Allocate and invoke the model in TFLM with ``arena_bytes`` in a subprocess (returncode 0 = fits)."""
    return subprocess.run([sys.executable, "-c", _PROBE, str(model_path), str(int(arena_bytes))],
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip


def measure_arena(model_path: str | Path, step: int = ARENA_STEP) -> dict[str, int]:
    """The smallest TFLM arena (a multiple of ``step``) that allocates and invokes the model, and
    ``arena_bytes`` = that plus the margin (see ARENA_MARGIN_FRACTION). The first probe, with a generous
    arena, is the check that the model runs in TFLM at all (an op TFLM lacks is a clear error)."""
    size = Path(model_path).stat().st_size
    hi = _round_up(max(10 * size, 64 * 1024), step)
    first = probe_arena(model_path, hi)
    if first.returncode != 0:
        raise BundleError(f"TFLite Micro cannot run {Path(model_path).name} (with a {hi}-byte arena): "
                                   f"{_last_error(first)}. Change the model to use ops TFLM supports.")  # fmt: skip
    lo = 0  # invariant: an arena of lo bytes fails, hi bytes works
    while hi - lo > step:
        mid = lo + (hi - lo) // (2 * step) * step
        if probe_arena(model_path, mid).returncode == 0:
            hi = mid
        else:
            lo = mid
    margin = _round_up(max(ARENA_MARGIN_MIN, ARENA_MARGIN_FRACTION * hi), step)
    return {"arena_bytes": hi + margin, "arena_min_bytes": hi, "arena_margin_bytes": margin, "arena_step_bytes": step}


def generated_sources(manifest: dict[str, Any], model: bytes, comment: str = "",
                      engine: Any = None) -> tuple[dict[str, str], dict[str, Any]]:  # fmt: skip
    """Every C source of a bundle by artifact kind (``ARTIFACTS``, ``ENGINE_ARTIFACTS``), made from the
    int8 ``model`` and the validated ``manifest`` (with ``tflm.arena_bytes``), and the C engine's figures;
    ``engine`` is ``harlite.engine.generate(model, comment)`` when the caller already made it."""
    from harlite.engine import generate

    engine = engine or generate(model, comment)
    header, source = model_data_sources(model, comment)
    texts = {"tflm_model_header": header, "tflm_model_data": source, "tflm_config": config_header(manifest, comment),
             "tflm_op_resolver": op_resolver_header(model_ops(model), comment)}  # fmt: skip
    texts.update({kind: engine.files[name] for kind, name in ENGINE_ARTIFACTS.items()})
    return texts, engine.figures()


def write_sources(bundle_dir: str | Path, firmware_dir: str | Path | None = None, force: bool = False) -> dict[str, Any]:
    """Check the int8 model against the bundle's TFLM target and in TFLM itself, measure its arena, write
    ``bundle_dir/tflm/*`` and ``bundle_dir/engine/*`` (and the same files into ``firmware_dir``), and
    record target, ops, arena, engine figures and artifacts in the manifest; returns the manifest.

    The bundle is loaded with ``harlite.bundle.load_bundle`` (its int8 model verified; the C sources are
    what this writes anew) under a lock on ``bundle_dir``. Files in ``firmware_dir`` are replaced only
    when harlite generated them, or with ``force``.
    """
    from harlite.bundle import load_bundle
    from harlite.engine import generate
    from harlite.runtimes import Int8Runtime
    from harlite.stages import folder_lock

    bundle_dir = Path(bundle_dir)
    with folder_lock(bundle_dir):
        bundle = load_bundle(bundle_dir, verify=False)
        manifest = dict(bundle.manifest)
        model = bundle.read("int8")
        model_path = bundle.path("int8")
        target = bundle.target
        require_compatible(model, target, str(model_path))
        ops = model_ops(model)
        comment = _comment(bundle_dir, manifest)
        op_resolver_header(ops, comment)  # fails early for an op without a resolver method
        engine = generate(model, comment)  # fails early for a construct the C engine does not run
        firmware = Path(firmware_dir) if firmware_dir is not None else None
        if firmware is not None:
            for name in [*ARTIFACTS.values(), *ENGINE_ARTIFACTS.values()]:
                check_replaceable(firmware / name, force)
        print(f"harlite codegen: measuring the TFLite Micro arena of {model_path.name} ({len(model)} bytes)...",
              file=sys.stderr)  # fmt: skip
        tflm = measure_arena(model_path)
        tflm.update({"flash_bytes": len(model), "measured_with": _measured_with(), "target": target})
        manifest.update(tflm=tflm, ops=ops, engine=engine.figures())
        Int8Runtime(manifest, "tflm", model, str(model_path))  # quantization and shape must match the manifest
        texts, _ = generated_sources(manifest, model, comment, engine)
        names = {**ARTIFACTS, **ENGINE_ARTIFACTS}
        for kind, text in texts.items():
            atomic_write_text(bundle_dir / _folder(kind) / names[kind], text)
        if firmware is not None:
            with folder_lock(firmware):
                for kind, text in texts.items():
                    atomic_write_text(firmware / names[kind], text)
        manifest["artifacts"] = {**manifest["artifacts"],
                                 **{kind: artifact_entry(bundle_dir / _folder(kind) / names[kind], bundle_dir)
                                    for kind in texts}}  # fmt: skip
        write_json(bundle_dir / MANIFEST, manifest)
        load_bundle(bundle_dir)  # what was written reads back verified
    print(f"harlite codegen: {target}; arena {tflm['arena_bytes']} bytes (measured minimum {tflm['arena_min_bytes']} "
          f"+ margin {tflm['arena_margin_bytes']}), {len(ops)} ops; C engine scratch {engine.scratch_bytes} bytes "
          f"-> {bundle_dir / TFLM_DIR}, {bundle_dir / ENGINE_DIR}" + (f" and {firmware}" if firmware is not None else ""),
          file=sys.stderr)  # fmt: skip
    return manifest


def _folder(kind: str) -> str:
    return ENGINE_DIR if kind in ENGINE_ARTIFACTS else TFLM_DIR


def _comment(bundle_dir: Path, manifest: dict[str, Any]) -> str:
    entry = manifest["artifacts"]["int8"]
    return _c_comment(f"{MARKER} from {bundle_dir.resolve().name}/{MANIFEST}; {entry['file']} sha256 "
                      f"{entry['sha256']}. Do not edit.")  # fmt: skip


def _measured_with() -> str:
    import platform
    from importlib.metadata import version

    return f"tflite-micro {version('tflite-micro')} Python interpreter, reference kernels, {platform.machine()} host"


def _last_error(result: subprocess.CompletedProcess) -> str:
    """TFLM's own messages and the exception, without the Python traceback."""
    lines = [line.strip() for line in (result.stderr or "").splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Traceback", "File ", "^", "~"))][-3:]
    message = "; ".join(lines) or f"exit status {result.returncode}"
    return f"the interpreter crashed (signal {-result.returncode}): {message}" if result.returncode < 0 else message


def _round_up(n: int, step: int) -> int:
    return int(math.ceil(n / step) * step)


def _c_int(v: Any) -> str:
    v = int(v)
    return f"({v})" if v < 0 else str(v)


def _c_float(v: Any) -> str:
    v = float(v)
    if not math.isfinite(v):
        raise BundleError(f"the manifest holds a non-finite number ({v}): rebuild the bundle.")
    s = f"{v:.9g}"
    return (s if any(c in s for c in ".e") else s + ".0") + "f"


def _c_string(s: str) -> str:
    """A C string literal of ``s``'s UTF-8 bytes: printable ASCII as is, anything else (quotes, backslashes,
    '?' of trigraphs, control and non-ASCII bytes) as an escape, so no text can end the literal."""
    out = []
    for byte in str(s).encode("utf-8"):
        char = chr(byte)
        out.append(char if 0x20 <= byte < 0x7F and char not in '"\\?' else f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _c_comment(text: str) -> str:
    """``text`` safe inside a /* */ comment on one line: no line breaks, no comment end."""
    return "".join(c if c.isprintable() else " " for c in str(text)).replace("*/", "* /")


def _c_list(items: Any) -> str:
    return "{ " + ", ".join(items) + " }"

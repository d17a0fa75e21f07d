"""The C sources of a bundle's int8 model for TensorFlow Lite Micro, as text (pure: no files, no Bundle).

- ``model_data_sources``: ``harlite_model_data.h/.cpp``, the int8 .tflite byte for byte as an
  ``alignas(16) const`` array (const, so it stays in flash) and its length ``HARLITE_MODEL_DATA_LEN``;
- ``config_header``: ``harlite_model_config.h``, C99 macros with everything the firmware must not
  hard-code, including the tensor arena size;
- ``op_resolver_header``: ``harlite_op_resolver.h``, a ``tflite::MicroMutableOpResolver<N>`` with exactly
  the model's ops."""

from __future__ import annotations

from typing import Any

import numpy as np

from harlite.codegen.c_text import c_comment, c_float, c_int, c_list, c_string
from harlite.codegen.targets import OP_RESOLVER_METHODS
from harlite.core.frontend import IMU6, channel_map, quantize_params
from harlite.errors import BundleError

DATA_H, DATA_CPP = "harlite_model_data.h", "harlite_model_data.cpp"
CONFIG_H, RESOLVER_H = "harlite_model_config.h", "harlite_op_resolver.h"


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
        ("RATE_HZ", str(int(rate)) if rate.is_integer() else c_float(rate), None),
        ("WINDOW", c_int(manifest["window"]), None),
        ("HOP", c_int(manifest["hop"]), None),
        ("NUM_RAW", c_int(len(raw)), "raw sensor values per sample, in g and rad/s"),
        ("RAW_NAMES", c_string(",".join(raw)), "their CSV columns"),
        ("NUM_CHANNELS", c_int(len(channels)), None),
        ("NUM_CLASSES", c_int(len(manifest["labels"])), None),
        ("CH_RAW", "0", "channel kinds"),
        ("CH_BODY", "1", "raw minus its gravity estimate"),
        ("CH_GRAVITY", "2", "the gravity estimate itself (low-pass output)"),
        ("CHANNEL_KIND", c_list(str(k) for k in kinds), None),
        ("CHANNEL_SOURCE", c_list(str(s) for s in sources), "raw index per channel"),
        ("CHANNEL_NAMES", c_list(c_string(c) for c in channels), None),
        ("CHANNEL_UNITS", c_list(c_string(u) for u in units), None),
        ("LABELS", c_list(c_string(label) for label in manifest["labels"]), None),
        ("GRAVITY_SECTIONS", c_int(len(fe["gravity_sos"])), None),
        ("GRAVITY_SOS", c_list(c_list(map(c_float, s)) for s in fe["gravity_sos"]), "per section, scipy sos layout"),
        ("GRAVITY_ZI", c_list(c_list(map(c_float, z)) for z in fe["gravity_zi"]), "steady state for a unit input"),
        ("INPUT_SCALE", c_float(quant["input"]["scale"]), None),
        ("INPUT_ZERO_POINT", c_int(quant["input"]["zero_point"]), None),
        ("INPUT_MUL", c_list(map(c_float, mul)), "q = floor(v*MUL + ADD + 0.5), clamped"),
        ("INPUT_ADD", c_list(map(c_float, add)), None),
        ("OUTPUT_SCALE", c_float(quant["output"]["scale"]), None),
        ("OUTPUT_ZERO_POINT", c_int(quant["output"]["zero_point"]), None),
        ("ARENA_BYTES", c_int(tflm["arena_bytes"]), _arena_note(tflm)),
        *_postprocess_lines(manifest.get("postprocess")),
        *_unknown_lines(manifest.get("unknown"), len(channels), len(manifest["labels"])),
    ]
    body = "".join(
        f"#define HARLITE_{name} {value}" + (f"  /* {note} */" if note else "") + "\n" for name, value, note in lines
    )
    return f"#ifndef HARLITE_MODEL_CONFIG_H\n#define HARLITE_MODEL_CONFIG_H\n/* {c_comment(comment)} */\n{body}#endif\n"


SMOOTHING_MODES = {"none": 0, "majority": 1, "ema": 2}  # harlite_core.h's harlite_smoothing_t


def _postprocess_lines(postprocess: dict[str, Any] | None) -> list[tuple[str, str, str | None]]:
    """The bundle's calibrated post-processing (``manifest.postprocess``): the firmware's default."""
    if postprocess is None:
        return []
    kind, _, arg = str(postprocess["smoothing"]).partition(":")
    return [
        (
            "POSTPROCESS_MODE",
            str(SMOOTHING_MODES[kind]),
            f"calibrated: {postprocess['smoothing']} (0 none, 1 majority, 2 ema)",
        ),
        ("POSTPROCESS_K", c_int(arg if kind == "majority" else 1), None),
        ("POSTPROCESS_ALPHA", c_float(arg if kind == "ema" else 1.0), None),
        ("POSTPROCESS_DWELL", c_int(postprocess["dwell"]), None),
        ("POSTPROCESS_HYSTERESIS", c_float(postprocess["hysteresis"]), None),
    ]


def _unknown_lines(unknown: dict[str, Any] | None, channels: int, classes: int) -> list[tuple[str, str, str | None]]:
    """The integer unknown decision (``manifest.unknown``, harlite/core/unknown.py) as macros."""
    if unknown is None:  # harlite_core.h: HARLITE_UNKNOWN 0, every window gets a class
        return []
    dist, d = unknown["distance"], len(unknown["distance"]["center"])
    hidden = d - 2 * channels
    rows = [v for row in dist["rows"] for v in row]
    return [
        ("UNKNOWN", "1", "windows that are none of the classes are reported unknown (harlite_unknown_decide)"),
        ("FEATURES_BYTES", c_int(hidden + classes), "the model's other outputs: hidden vector, then logits"),
        ("UNKNOWN_HIDDEN", c_int(hidden), None),
        ("UNKNOWN_FEATURES", c_int(d), None),
        ("UNKNOWN_HIDDEN_ZERO_POINT", c_int(unknown["hidden"]["zero_point"]), None),
        ("UNKNOWN_LOGIT_ZERO_POINT", c_int(unknown["logits"]["zero_point"]), None),
        ("UNKNOWN_LOGIT_MUL", c_int(unknown["energy"]["logit_mul"]), "logit scale in 2^-12 nats"),
        (
            "UNKNOWN_DISTANCE_THRESHOLD",
            c_int(dist["threshold"]),
            f"calibrated: {unknown['rejected']:.2%} of {unknown['windows']} {unknown['calibrated_on']} windows unknown",
        ),
        ("UNKNOWN_ENERGY_THRESHOLD", c_int(unknown["energy"]["threshold"]), None),
        ("UNKNOWN_OTHER_CLASS", c_int(unknown.get("other_class", -1)), "a class always reported unknown, or -1"),
        ("UNKNOWN_CENTER", _long_list(dist["center"]), None),
        ("UNKNOWN_SHIFTS", _long_list(dist["shifts"]), None),
        ("UNKNOWN_ROWS", _long_list(rows), "upper triangle of the whitening, row by row from the diagonal"),
        ("UNKNOWN_MEANS", "{ " + ", \\\n    ".join(_long_list(m) for m in dist["means"]) + " }", None),
    ]


def _long_list(values: list[int]) -> str:
    """A C initializer of integers over several lines (macro continuation lines)."""
    text = [c_int(v) for v in values]
    return "{ " + ", \\\n    ".join(", ".join(text[i : i + 16]) for i in range(0, len(text), 16)) + " }"


def _arena_note(tflm: dict[str, Any]) -> str:
    if "arena_min_bytes" not in tflm or "arena_margin_bytes" not in tflm:
        return "measured with TFLM"
    return f"measured with TFLM: minimum {tflm['arena_min_bytes']} + margin {tflm['arena_margin_bytes']}"

"""Every generated C source of a bundle, by artifact kind: TFLM's model array, config header and op
resolver (``harlite.codegen.tflm``) and harlite's C engine (``harlite.engine``), from the int8 model and
the manifest. Pure: text in, text out."""

from __future__ import annotations

from typing import Any

from harlite.codegen.targets import model_ops
from harlite.codegen.tflm import (
    CONFIG_H,
    DATA_CPP,
    DATA_H,
    RESOLVER_H,
    config_header,
    model_data_sources,
    op_resolver_header,
)
from harlite.engine import generate

TFLM_DIR = "tflm"
# manifest artifact key -> file in tflm/
ARTIFACTS = {"tflm_model_header": DATA_H, "tflm_model_data": DATA_CPP, "tflm_config": CONFIG_H,
             "tflm_op_resolver": RESOLVER_H}  # fmt: skip
ENGINE_DIR = "engine"
# manifest artifact key -> file in engine/
ENGINE_ARTIFACTS = {"engine_header": "harlite_engine.h", "engine_model": "harlite_engine_model.c",
                    "engine_kernels_header": "harlite_engine_kernels.h", "engine_kernels": "harlite_engine_kernels.c"}  # fmt: skip
# Every generated C source's artifact kind; the first two hold the int8 model byte for byte.
SOURCE_KINDS = (*ARTIFACTS, *ENGINE_ARTIFACTS)
MODEL_ARRAY_KINDS = ("tflm_model_header", "tflm_model_data")


def generated_sources(manifest: dict[str, Any], model: bytes, comment: str = "",
                      engine: Any = None) -> tuple[dict[str, str], dict[str, Any]]:  # fmt: skip
    """Every C source of a bundle by artifact kind (``ARTIFACTS``, ``ENGINE_ARTIFACTS``), made from the
    int8 ``model`` and the validated ``manifest`` (with ``tflm.arena_bytes``), and the C engine's figures;
    ``engine`` is ``harlite.engine.generate(model, comment)`` when the caller already made it."""

    engine = engine or generate(model, comment)
    header, source = model_data_sources(model, comment)
    texts = {"tflm_model_header": header, "tflm_model_data": source, "tflm_config": config_header(manifest, comment),
             "tflm_op_resolver": op_resolver_header(model_ops(model), comment)}  # fmt: skip
    texts.update({kind: engine.files[name] for kind, name in ENGINE_ARTIFACTS.items()})
    return texts, engine.figures()


def artifact_folder(kind: str) -> str:
    return ENGINE_DIR if kind in ENGINE_ARTIFACTS else TFLM_DIR

"""``harlite convert``: a Keras model to int8/float32/float16 .tflite files and manifest.json."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harlite.bundle.manifest import MANIFEST
from harlite.codegen.targets import DEFAULT_TARGET, TARGETS
from harlite.pipeline.c_sources import write_sources
from harlite.pipeline.convert import convert as run


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Bundle folder to write (not needed when MODEL is a bundle).",
)
@click.option(
    "--firmware",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the TFLM and C engine sources into this sketch folder, e.g. firmware/arduino/harlite_har.",
)
@click.option(
    "--target",
    type=click.Choice(list(TARGETS)),
    default=None,
    help="The TFLM the firmware builds against: tflm-arduino-2023.02 (the sketch's Arduino library) "
    "or tflm-2026 (today's TFLM). The int8 model is written to run there as parity certifies.  "
    f"[default: {DEFAULT_TARGET}; a bundle keeps its own]",
)
@click.option(
    "--calibration",
    type=click.IntRange(1),
    default=500,
    show_default=True,
    help="Calibration windows for the int8 model, from training subjects only.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing bundle's files.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
def convert(model: Path, out: Path | None, firmware: Path | None, target: str | None, calibration: int, force: bool,
            as_json: bool) -> None:  # fmt: skip
    """Convert MODEL (a model.keras or a run folder) into a bundle, or refresh a bundle's C sources.

    Writes OUT/model_int8.tflite (full integer, int8 in and out, fused LSTM), model_float32.tflite,
    model_float16.tflite, model.keras and manifest.json (front end, normalization, quantization,
    artifacts with sha256, ops, the TFLM target), the TFLite Micro sources in OUT/tflm (the model as a
    C array, the config header the firmware reads, an op resolver with exactly the model's ops, the
    tensor arena size measured in the TFLM interpreter) and harlite's C engine in OUT/engine (plain
    C99, no TFLM, bit-exact with it). Each input channel is rescaled (exactly, into the first layer and
    the manifest's normalization) to span the whole int8 input range. For a run folder the QAT model
    (RUN/qat/model.keras) is used when 'harlite qat' has made one. When MODEL is a bundle (a folder with
    manifest.json), only its C sources are written again, into the bundle and into --firmware.

    \b
    Example:
      harlite convert runs/cnn_lstm --out models/cnn_lstm
      harlite convert runs/cnn_lstm --out models/cnn_lstm --firmware firmware/arduino/harlite_har --force
      harlite convert runs/cnn_lstm/model.keras --out models/cnn_lstm_ptq --calibration 500 --force
      harlite convert models/cnn_lstm --firmware firmware/arduino/harlite_har
    """
    if (model / MANIFEST).is_file():
        if out is not None:
            raise click.UsageError("MODEL is already a bundle: drop --out, or pass a model.keras or run folder.")
        if target is not None:
            raise click.UsageError("a bundle keeps the TFLM target it was converted for: drop --target, or convert "
                                   "its model.keras into a new bundle with --target.")  # fmt: skip
        manifest = write_sources(model, firmware_dir=firmware, force=force)
        out = model
    else:
        if out is None:
            raise click.UsageError("--out is required: the bundle folder to write.")
        manifest = run(
            model, out, calibration=calibration, force=force, firmware=firmware, target=target or DEFAULT_TARGET
        )
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
    else:
        sizes = ", ".join(f"{k} {a['bytes']} B" for k, a in manifest["artifacts"].items() if k != "keras")
        click.echo(f"{out}: {sizes}; ops {', '.join(manifest['ops'])}")

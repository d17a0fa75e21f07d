"""``harlite convert``: a Keras model to int8/float32/float16 .tflite files and manifest.json."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Bundle folder to write.")
@click.option("--calibration", type=click.IntRange(1), default=500, show_default=True,
              help="Calibration windows for the int8 model, from training subjects only.")
@click.option("--force", is_flag=True, help="Overwrite an existing bundle's files.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
def convert(model: Path, out: Path, calibration: int, force: bool, as_json: bool) -> None:
    """Convert MODEL (a model.keras or a run folder) into a bundle.

    Writes OUT/model_int8.tflite (full integer, int8 in and out, fused LSTM), model_float32.tflite,
    model_float16.tflite, model.keras and manifest.json (front end, normalization, quantization,
    artifacts with sha256, ops). For a run folder the QAT model (RUN/qat/model.keras) is used when
    'harlite qat' has made one.

    \b
    Example:
      harlite convert runs/cnn_lstm --out models/cnn_lstm
      harlite convert runs/cnn_lstm/model.keras --out models/cnn_lstm_ptq --calibration 500 --force
    """
    from harlite.convert import convert as run

    manifest = run(model, out, calibration=calibration, force=force)
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
    else:
        sizes = ", ".join(f"{k} {a['bytes']} B" for k, a in manifest["artifacts"].items() if k != "keras")
        click.echo(f"{out}: {sizes}; ops {', '.join(manifest['ops'])}")

"""``harlite train``, ``harlite qat`` and ``harlite evaluate``: float training, QAT, test-subject scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

MODEL_NAMES = ("cnn_lstm", "lstm")  # harlite.models.MODELS, listed here so --help needs no TensorFlow


def _summary(scores: dict[str, Any]) -> str:
    return ", ".join(f"{name} {m['accuracy']:.2%} (macro-F1 {m['macro_f1']:.3f})" for name, m in scores.items())


def _print(result: dict[str, Any], as_json: bool, text: str) -> None:
    click.echo(json.dumps(result, indent=2, default=str) if as_json else text)


@click.command()
@click.option("--model", "model_name", type=click.Choice(MODEL_NAMES), default="cnn_lstm", show_default=True,
              help="Architecture: cnn_lstm (compact default for MCUs) or lstm (2x LSTM(32) reference).")
@click.option("--epochs", type=click.IntRange(1), default=80, show_default=True, help="Epochs of the cosine schedule.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (weights, shuffling, augmentation).")
@click.option("--val-subjects", type=click.IntRange(0), default=4, show_default=True,
              help="Training subjects held out for validation (QAT selects on them).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing run folder's files.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
def train(model_name: str, epochs: int, seed: int, val_subjects: int, out: Path, force: bool, as_json: bool) -> None:
    """Train a float model on the HAPT windows of the training subjects.

    Writes OUT/model.keras, normalization.json, history.json, metrics.json (test accuracy and
    macro-F1), learning_curves.png and confusion.png. Same seed and data, same model.

    \b
    Example:
      harlite train --out runs/cnn_lstm --seed 0
      harlite train --model lstm --out runs/lstm --json
    """
    from harlite.train import TrainConfig
    from harlite.train import train as run

    config = TrainConfig(model=model_name, epochs=epochs, seed=seed, val_subjects=val_subjects)
    metrics = run(out, config, force=force)
    _print(metrics, as_json, f"{out}: test {_summary(metrics['test'])}")


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--epochs", type=click.IntRange(1), default=8, show_default=True, help="QAT epochs.")
@click.option("--lr", "learning_rate", type=click.FloatRange(0, min_open=True), default=1e-4, show_default=True,
              help="Peak learning rate (cosine decay).")
@click.option("--calibration", type=click.IntRange(1), default=500, show_default=True,
              help="Calibration windows from training subjects.")
@click.option("--force", is_flag=True, help="Overwrite RUN_DIR/qat.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
def qat(run_dir: Path, epochs: int, learning_rate: float, calibration: int, force: bool, as_json: bool) -> None:
    """Quantization-aware fine-tuning of a trained model (the LSTM included), beside a PTQ baseline.

    Writes RUN_DIR/qat/: model.keras (the int8-ready model: QAT weights on the int8 grid, or the
    float model if PTQ scored better on the validation subjects), model_int8.tflite (the chosen one),
    ptq_int8.tflite, qat_int8.tflite and metrics.json with both on validation and test subjects.

    \b
    Example:
      harlite train --out runs/cnn_lstm && harlite qat runs/cnn_lstm
    """
    from harlite.qat import qat as run

    metrics = run(run_dir, epochs=epochs, learning_rate=learning_rate, calibration=calibration, force=force)
    scores = {k: metrics["test"][k] for k in ("float", "ptq_int8", "qat_int8")}
    _print(metrics, as_json, f"{run_dir / 'qat'}: kept {metrics['chosen']} ({metrics['reason']}); test {_summary(scores)}")


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for evaluation.json and confusion_<model>.png.")
@click.option("--force", is_flag=True, help="Overwrite an existing evaluation.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def evaluate(artifact: Path, out: Path | None, force: bool, as_json: bool) -> None:
    """Accuracy, macro-F1, per-class precision/recall and confusion matrix on the test subjects.

    ARTIFACT is a run folder, a model.keras, a bundle (every model in it) or a .tflite file beside a
    manifest.json; .tflite files run in LiteRT, reset before every window.

    \b
    Example:
      harlite evaluate models/cnn_lstm --out reports/cnn_lstm
      harlite evaluate models/cnn_lstm/model_int8.tflite --json
    """
    from harlite.evaluate import evaluate as run

    report = run(artifact, out=out, force=force)
    lines = [f"{name:<14} accuracy {m['accuracy']:.2%}  macro-F1 {m['macro_f1']:.3f}  (n={m['n']})"
             for name, m in report["results"].items()]  # fmt: skip
    _print(report, as_json, "\n".join(lines))

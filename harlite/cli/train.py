"""``harlite train``, ``harlite qat`` and ``harlite evaluate``: float training, QAT, test-split scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from harlite.cli.options import data_options, data_spec, jobs_option, stream_option, workers_option
from harlite.pipeline.evaluate import evaluate as evaluate_artifact
from harlite.pipeline.train import MOUNTINGS, TrainConfig
from harlite.pipeline.train import train as train_model
from harlite.pipeline.workers import qat_on_workers, train_on_workers

MODEL_NAMES = ("cnn_lstm", "lstm")  # harlite.pipeline.models.MODELS, listed here so --help needs no TensorFlow


def _summary(scores: dict[str, Any]) -> str:
    return ", ".join(f"{name} {m['accuracy']:.2%} (macro-F1 {m['macro_f1']:.3f})" for name, m in scores.items())


def _print(result: dict[str, Any], as_json: bool, text: str) -> None:
    click.echo(json.dumps(result, indent=2, default=str) if as_json else text)


@click.command()
@click.option(
    "--model",
    "model_name",
    type=click.Choice(MODEL_NAMES),
    default="cnn_lstm",
    show_default=True,
    help="Architecture: cnn_lstm (compact default for MCUs) or lstm (2x LSTM(32) reference).",
)
@data_options
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=None,
    help="Epochs of the cosine schedule.  [default: chosen from the amount of data; 80 for HAPT]",
)
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Batch size.  [default: from the data]")
@click.option(
    "--class-weights/--no-class-weights",
    default=None,
    help="Weigh classes equally in the loss.  [default: when classes are unequal by more than 2:1]",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (weights, shuffling, augmentation).")
@click.option(
    "--mounting",
    type=click.Choice(MOUNTINGS),
    default="fixed",
    show_default=True,
    help="any: train for a device turned any way about the vertical axis and tilted (docs/field.md).",
)
@stream_option
@workers_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing run folder's files.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
def train(model_name: str, data: Path | None, test_data: Path | None, test_subjects: tuple[str, ...] | None,
          val_subjects: int | None, rate_hz: float | None, window: str | None, hop: str | None,
          transitions: bool, epochs: int | None, batch_size: int | None, class_weights: bool | None, seed: int,
          mounting: str, stream: bool | None, workers: int | None, out: Path, force: bool,
          as_json: bool) -> None:  # fmt: skip
    """Train a float model on the training split of the data (default: the embedded HAPT recordings).

    With --data, the labels, sensors (acc, or acc and gyro) and the split come from your recordings;
    --rate, --window and --hop set the protocol. Writes OUT/model.keras, protocol.json, history.json,
    metrics.json (test accuracy, macro-F1, per-class precision and recall), learning_curves.png and
    confusion.png. Same seed and data, same model (on one machine, with the same number of workers).

    Windows are cut once into the cache and streamed from there when the split is larger than 64 MB, so
    memory does not grow with the data. With TF_CONFIG set this process is one worker of a cluster; the
    chief writes OUT. A run that stopped part way resumes from its last finished epoch (docs/scale.md).

    \b
    Example:
      harlite train --out runs/cnn_lstm --seed 0
      harlite train --data my_recordings/ --test-subjects bob --out runs/mine
      harlite train --data wrist/ --test-data wrist_test/ --rate 25 --window 2.56s --out runs/wrist
      harlite train --data big/ --workers 2 --out runs/big
    """
    spec = data_spec(data, test_data, test_subjects, val_subjects, rate_hz, window, hop, transitions)
    config = TrainConfig(model=model_name, epochs=epochs, batch_size=batch_size, seed=seed,
                         class_weights=class_weights, mounting=mounting, stream=stream)  # fmt: skip
    if workers:
        metrics = train_on_workers(out, config, workers, force=force, data_spec=spec)
    else:
        metrics = train_model(out, config, force=force, data_spec=spec)
        if "worker" in metrics:
            click.echo(f"worker {metrics['worker']} of {metrics['workers']}: done; the chief writes {out}")
            return
    weak = [f"{name} (recall {m['recall']:.0%})" for name, m in metrics["test"]["float"]["per_class"].items()
            if m["support"] and m["recall"] < 0.8]  # fmt: skip
    text = f"{out}: test {_summary(metrics['test'])}" + (f"; weak: {', '.join(weak)}" if weak else "")
    _print(metrics, as_json, text)


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--epochs", type=click.IntRange(1), default=8, show_default=True, help="QAT epochs.")
@click.option(
    "--lr",
    "learning_rate",
    type=click.FloatRange(0, min_open=True),
    default=1e-4,
    show_default=True,
    help="Peak learning rate (cosine decay).",
)
@click.option(
    "--calibration",
    type=click.IntRange(1),
    default=500,
    show_default=True,
    help="Calibration windows from training subjects.",
)
@workers_option
@click.option("--force", is_flag=True, help="Overwrite RUN_DIR/qat.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
def qat(run_dir: Path, epochs: int, learning_rate: float, calibration: int, workers: int | None, force: bool,
        as_json: bool) -> None:  # fmt: skip
    """Quantization-aware fine-tuning of a trained model (the LSTM included), beside a PTQ baseline.

    Writes RUN_DIR/qat/: model.keras (the int8-ready model: QAT weights on the int8 grid, or the
    float model if PTQ scored better on the validation subjects), protocol.json, model_int8.tflite (the
    chosen one), ptq_int8.tflite, qat_int8.tflite and metrics.json with both on validation and test.

    With TF_CONFIG set this process is one worker of a cluster, and --workers N runs N local workers
    (docs/scale.md); a QAT that stopped part way resumes from its last finished epoch.

    \b
    Example:
      harlite train --out runs/cnn_lstm && harlite qat runs/cnn_lstm
      harlite qat runs/big --workers 2
    """
    options = {"epochs": epochs, "learning_rate": learning_rate, "calibration": calibration}
    if workers:
        metrics = qat_on_workers(run_dir, workers, force=force, **options)
    else:
        from harlite.pipeline.qat import qat as fine_tune  # imports TensorFlow: not at --help

        metrics = fine_tune(run_dir, force=force, **options)
        if "worker" in metrics:
            click.echo(f"worker {metrics['worker']}: done; the chief writes {run_dir / 'qat'}")
            return
    scores = {k: metrics["test"][k] for k in ("float", "ptq_int8", "qat_int8")}
    _print(
        metrics, as_json, f"{run_dir / 'qat'}: kept {metrics['chosen']} ({metrics['reason']}); test {_summary(scores)}"
    )


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The dataset folder, when it has moved since the model was trained (split as trained).",
)
@click.option(
    "--runtime",
    type=click.Choice(["litert", "tflm", "c"]),
    default="litert",
    show_default=True,
    help="Where int8 models run: LiteRT, TFLite Micro, or harlite's C engine (the board's code).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for evaluation.json and confusion_<model>.png.",
)
@jobs_option
@click.option("--force", is_flag=True, help="Overwrite an existing evaluation.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def evaluate(artifact: Path, data: Path | None, runtime: str, out: Path | None, jobs: int, force: bool,
             as_json: bool) -> None:  # fmt: skip
    """Accuracy, macro-F1, per-class precision/recall and confusion matrix on the test split.

    ARTIFACT is a run folder, a model.keras, a bundle (every model in it) or a .tflite file beside a
    manifest.json; .tflite files run in LiteRT (int8 ones in --runtime), reset before every window.

    \b
    Example:
      harlite evaluate models/cnn_lstm --out reports/cnn_lstm
      harlite evaluate models/cnn_lstm/model_int8.tflite --json
      harlite evaluate models/cnn_lstm/model_int8.tflite --runtime c
      harlite evaluate runs/big/bundle --runtime tflm --jobs 4
    """
    report = evaluate_artifact(
        artifact, out=out, force=force, data=None if data is None else str(data), runtime=runtime, jobs=jobs
    )
    lines = [f"{name:<14} accuracy {m['accuracy']:.2%}  macro-F1 {m['macro_f1']:.3f}  (n={m['n']})"
             for name, m in report["results"].items()]  # fmt: skip
    _print(report, as_json, "\n".join(lines))

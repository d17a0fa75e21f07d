"""``harlite build`` (the main job) and ``harlite bench`` (every stage's figures in one JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harlite.cli.options import data_options, data_spec, stream_option, unknown_rate_option, workers_option
from harlite.cli.train import MODEL_NAMES
from harlite.codegen.targets import DEFAULT_TARGET, TARGETS
from harlite.io.files import check_writable, write_json
from harlite.pipeline.bench import SECTIONS, SLOW_SECTIONS, format_table, kept_sections, run_bench
from harlite.pipeline.bench_field import LOAO_EPOCHS
from harlite.pipeline.build import BuildConfig
from harlite.pipeline.build import build as run
from harlite.pipeline.train import MOUNTINGS


@click.command()
@click.option(
    "--model",
    "model_name",
    type=click.Choice(["cnn_lstm", "lstm"]),
    default="cnn_lstm",
    show_default=True,
    help="Architecture: cnn_lstm (compact default for MCUs) or lstm (two stacked LSTM(32)).",
)
@data_options
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=None,
    help="Training epochs.  [default: chosen from the amount of data; 80 for HAPT]",
)
@click.option(
    "--target",
    type=click.Choice(list(TARGETS)),
    default=DEFAULT_TARGET,
    show_default=True,
    help="The TFLM the firmware builds against (see 'harlite convert --help').",
)
@unknown_rate_option("none")
@click.option(
    "--mounting",
    type=click.Choice(MOUNTINGS),
    default="fixed",
    show_default=True,
    help="fixed: the device is worn as in the training data; any: train for a device turned any way about "
    "the vertical axis and tilted (costs HAPT about 3 points: sitting and standing differ by the "
    "direction of the tilt).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/default"),
    show_default=True,
    help="Run folder; a stage whose inputs are unchanged is not redone.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for training and QAT.")
@stream_option
@workers_option
@click.option("--quick", is_flag=True, help="A small smoke run (2 epochs, part of the test data), about 75 s.")
@click.option(
    "--release",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also copy the finished bundle and report here, e.g. models/cnn_lstm.",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing bundle at --release (never files harlite did not write)."
)
@click.option("--release-failed", is_flag=True, help="Release even when the parity check fails.")
@click.option("--json", "as_json", is_flag=True, help="Print the gathered results as JSON on stdout.")
def build(model_name: str, data: Path | None, test_data: Path | None, test_subjects: tuple[str, ...] | None,
          val_subjects: int | None, rate_hz: float | None, window: str | None, hop: str | None,
          transitions: bool, epochs: int | None, target: str, unknown_rate: float, mounting: str, out: Path,
          seed: int, stream: bool | None, workers: int | None, quick: bool, release: Path | None, force: bool,
          release_failed: bool, as_json: bool) -> None:  # fmt: skip
    """Data, train, QAT, convert, calibrate, parity, simulate and a report, in one command.

    Runs on the embedded default data (UCI HAPT) or on your recordings (--data: any labels, acc or acc
    and gyro, any steady rate) and writes OUT/report.md, OUT/bundle (the model in every form plus the
    TFLM C sources; its manifest carries your labels, sensors and rate to the firmware), OUT/parity and
    OUT/simulate (the test recordings replayed). The bundle says "unknown" for a window that is none of
    its activities (--unknown-rate) and post-processes its predictions as chosen on replays of the
    validation recordings ('harlite calibrate'). Exits 1 if the parity check fails. Training and QAT run
    on --workers local processes, or on the cluster TF_CONFIG describes (every worker runs the same
    command; the chief writes OUT, which the workers must share: docs/scale.md).

    \b
    Examples:
      harlite build                      # the default model into runs/default
      harlite build --quick --out runs/smoke
      harlite build --data my_recordings/ --out runs/mine
      harlite build --data wrist/ --test-data wrist_test/ --rate 25 --out runs/wrist
      harlite build --release models/cnn_lstm --force
      harlite build --data big/ --workers 2 --out runs/big
    """
    spec = data_spec(data, test_data, test_subjects, val_subjects, rate_hz, window, hop, transitions)
    config = BuildConfig(model=model_name, seed=seed, quick=quick, data=spec, epochs=epochs, target=target,
                         unknown_rate=unknown_rate, mounting=mounting, workers=workers, stream=stream)  # fmt: skip
    results = run(out, config, release=release, force=force, release_failed=release_failed)
    if "worker" in results:
        click.echo(f"worker {results['worker']} of {results['workers']}: done; the chief writes {out}")
        return
    if as_json:
        click.echo(json.dumps(results, indent=2, default=str))
    else:
        test = results["qat"]["test"]
        click.echo(
            f"{out}/report.md: float {test['float']['accuracy']:.2%}, int8 ({results['qat']['chosen']}) "
            f"{test['int8']['accuracy']:.2%}, int8 model {results['convert']['artifacts']['int8']['bytes']:,} B, "
            f"parity {'passed' if results['parity']['passed'] else 'FAILED'}"
        )
    if release is not None and not results["release"]["released"]:
        click.echo(
            f"parity FAILED: {release} was not released (the bundle is in {out}/bundle; --release-failed "
            "releases it anyway)",
            err=True,
        )
    if not results["parity"]["passed"]:
        raise SystemExit(1)


@click.command()
@click.argument("sections", nargs=-1, type=click.Choice(SECTIONS + ("all",)))
@click.option(
    "--bundle",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models/cnn_lstm"),
    show_default=True,
    help="Bundle whose figures are measured.",
)
@click.option(
    "--seeds",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Seeds for the train section (mean and spread).",
)
@click.option(
    "--field-epochs",
    type=click.IntRange(1),
    default=LOAO_EPOCHS,
    show_default=True,
    help="Training epochs of each leave-one-activity-out model of the field section (a quick schedule).",
)
@click.option(
    "--models",
    type=click.Choice(MODEL_NAMES),
    multiple=True,
    help="Models the train section trains (repeat for more; default: all).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    is_flag=False,
    flag_value=Path("-"),
    help="Write the figures to this JSON file (default: bench.json; the sections of an earlier harlite bench "
    "there that this run does not measure are kept); --json alone prints them on stdout (the table then goes "
    "to stderr).",
)
@click.option(
    "--scale-work",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/bench-scale"),
    show_default=True,
    help="Folder of the scale section: its data copies, window cache and runs (kept).",
)
@click.option("--force", is_flag=True, help="Overwrite the JSON file.")
def bench(sections: tuple[str, ...], bundle: Path, seeds: int, field_epochs: int, models: tuple[str, ...],
          json_path: Path | None, scale_work: Path, force: bool) -> None:  # fmt: skip
    """Measure every stage and write one JSON: the figures notes quote.

    SECTIONS: data (cold and warm load), train (float/PTQ/QAT over --seeds seeds, of --models, default
    both; slow), bundle (sizes, arena, parity and host latency of --bundle), simulate (replay
    throughput), firmware (the firmware's per-sample path under QEMU on Cortex-M0, M4F, M7, M33 and
    RV32IMC: flash, RAM with stack and instructions per window, with the C engine, and on the M4 with
    TFLM when HARLITE_TFLM_ARDUINO names a checkout of the Arduino library
    tflite-micro-arduino-examples), web (the web export in headless Chromium: its bytes, ms per window
    and samples/s through harlite.js, devicemotion events/s through the page, the host's C engine for
    comparison, and whether the predictions are simulate --runtime c's; needs chromium, clang, wasm-ld),
    field (the unknown decision on the test subjects' postural transitions, the stream metrics, the test
    subjects turned by 15 mountings, and six models each trained without one activity, which should come
    out unknown; slow, writes runs/bench_field), scale (peak memory and windows per second of one
    training epoch on 1x, 4x and 16x HAPT, one worker and two; slow, 1.5 GB of hard-linked CSV copies and
    the windows in --scale-work). Default: all but train, field and scale.

    \b
    Examples:
      harlite bench --json bench.json
      harlite bench firmware --json > firmware.json
      harlite bench data
      harlite bench train --seeds 3 --json bench_train.json
      harlite bench train --models cnn_lstm --seeds 3 --json bench_train.json
      harlite bench web --json web.json
      harlite bench field --bundle models/cnn_lstm --json bench_field.json
      harlite bench scale --json benchmarks/bench.json --force
    """
    chosen = tuple(s for s in SECTIONS if s not in SLOW_SECTIONS) if not sections else sections
    chosen = SECTIONS if "all" in chosen else chosen
    to_stdout = json_path == Path("-")
    path = None if to_stdout else check_writable(json_path or Path("bench.json"), force)
    figures = run_bench(chosen, bundle=bundle, seeds=seeds, field_epochs=field_epochs, models=models or MODEL_NAMES,
                        scale_work=scale_work)  # fmt: skip
    click.echo(format_table(figures), err=to_stdout)
    if path is None:
        click.echo(json.dumps(figures, indent=2, default=str))
    else:
        write_json(path, kept_sections(path, figures))
        click.echo(f"wrote {path}")

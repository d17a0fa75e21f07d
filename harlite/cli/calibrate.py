"""``harlite calibrate``: the unknown decision and the stream post-processing of an existing bundle."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harlite.cli.options import unknown_rate_option
from harlite.core.smoothing import SmoothingSpec
from harlite.pipeline.calibrate import calibrate as run


@click.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@unknown_rate_option("remove it")
@click.option("--keep-unknown", is_flag=True, help="Keep the bundle's unknown decision as it is.")
@click.option("--no-stream", is_flag=True, help="Leave the post-processing out (no smoothing, dwell or hysteresis).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest's unknown and postprocess as JSON.")
def calibrate(bundle: Path, unknown_rate: float, keep_unknown: bool, no_stream: bool, as_json: bool) -> None:
    """Calibrate BUNDLE for the field: its unknown decision and its stream post-processing.

    The unknown decision (a class-conditional distance in the model's hidden vector and the window's
    input sums, and the logits' energy) is fitted on the training subjects' windows and its thresholds
    set so that --unknown-rate of the validation subjects' windows are called unknown. The
    post-processing (smoothing, dwell, hysteresis) is chosen on replays of the validation recordings: as
    few label switches as the truth has, the shortest delay after a real change. Rewrites the bundle's
    manifest.json and C sources (the firmware reads both from harlite_model_config.h).

    \b
    Examples:
      harlite calibrate runs/default/bundle
      harlite calibrate models/cnn_lstm --unknown-rate 0.05
      harlite calibrate runs/mine/bundle --keep-unknown
    """
    manifest = run(bundle, unknown_rate=None if keep_unknown else unknown_rate, stream=not no_stream)
    unknown, post = manifest.get("unknown"), manifest.get("postprocess")
    if as_json:
        click.echo(json.dumps({"unknown": unknown, "postprocess": post}, indent=2))
        return
    if unknown:
        click.echo(f"unknown: {unknown['rejected']:.2%} of {unknown['windows']} {unknown['calibrated_on']} windows")
    if post:
        v = post["validation"]
        click.echo(f"post-processing: {SmoothingSpec.from_manifest(post)}; on the validation recordings "
                   f"{v['switches_per_min']:.2f} switches/min (true {v['true_switches_per_min']:.2f}), delay "
                   f"{v['delay_median_s']:.1f} s median, segment F1 {v['segment_f1']:.3f}")  # fmt: skip

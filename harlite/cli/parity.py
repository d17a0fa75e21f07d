"""``harlite parity``: Keras vs LiteRT vs TFLite Micro on the same windows, with thresholds."""

from __future__ import annotations

import json

import click

from harlite.run.parity import Thresholds, run


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option(
    "--split",
    type=click.Choice(["test", "train", "all"]),
    default="test",
    show_default=True,
    help="Whose windows: the bundle's test split, its training subjects, or all.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Use N windows spread evenly over the split.")
@click.option(
    "--min-tflm-agreement",
    type=click.FloatRange(0, 1),
    default=0.99,
    show_default=True,
    help="Least top-1 agreement of TFLM int8 with LiteRT int8 (a fraction).",
)
@click.option(
    "--max-int8-drop",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Most accuracy points LiteRT int8 or TFLM int8 may lose against Keras float.",
)
@click.option(
    "--min-float-agreement",
    type=click.FloatRange(0, 1),
    default=0.999,
    show_default=True,
    help="Least top-1 agreement of LiteRT float32 with Keras (a fraction).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="The dataset folder, when it has moved since the bundle was built (split as built).",
)
@click.option("--out", type=click.Path(file_okay=False), help="Write parity.json and parity.md into this folder.")
@click.option("--force", is_flag=True, help="Overwrite parity.json/parity.md that harlite did not write.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_context
def parity(
    ctx: click.Context,
    bundle: str,
    split: str,
    limit: int | None,
    min_tflm_agreement: float,
    max_int8_drop: float,
    min_float_agreement: float,
    data: str | None,
    out: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Run BUNDLE's model in Keras, LiteRT float32, LiteRT int8 and TFLite Micro and compare them.

    For each pair: top-1 agreement, max and mean absolute probability difference, the worst windows;
    for each runtime: accuracy. Exits 1, naming the threshold and by how much, when one is breached.

    \b
    Example:
      harlite parity models/cnn_lstm --min-tflm-agreement 0.995 --max-int8-drop 0.5
    """
    thresholds = Thresholds(min_tflm_agreement, max_int8_drop, min_float_agreement)
    report, paths = run(bundle, out, force, part=split, limit=limit, thresholds=thresholds,
                        log=lambda m: click.echo(m, err=True), data=data)  # fmt: skip
    for c in report["checks"]:
        click.echo(f"{'ok    ' if c['passed'] else 'FAILED'} {c['message']}", err=True)
    written = f": {', '.join(map(str, paths))}" if paths else ""
    click.echo(f"parity {'passed' if report['passed'] else 'FAILED'}{written}", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    if not report["passed"]:
        ctx.exit(1)

"""``harlite simulate``: replay recordings through a bundle as the board would run it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harlite.cli.options import jobs_option, parse_groups, parse_units
from harlite.core.smoothing import parse_smoothing
from harlite.run.timeline import run

SPLITS = ("test", "train")


def _smoothing(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return str(parse_smoothing(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.argument("recordings", nargs=-1, metavar="[RECORDING]...", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--dataset",
    help="Replay a dataset's continuous recordings: hapt (the embedded default) or a "
    "dataset folder.  [default with --split or --subjects: the bundle's own data]",
)
@click.option("--subjects", callback=parse_groups, help="Subjects of --dataset, comma-separated (e.g. 2,4 or alice).")
@click.option("--split", type=click.Choice(SPLITS), help="The bundle's test or training subjects of its data.")
@click.option(
    "--runtime",
    type=click.Choice(["tflm", "c", "litert", "keras"]),
    default="tflm",
    show_default=True,
    help="tflm: the int8 model in TFLite Micro (the board); c: harlite's C engine (the board without "
    "TFLM, compiled here); litert: int8 in LiteRT; keras: the float model.",
)
@click.option(
    "--smoothing",
    default="none",
    show_default=True,
    callback=_smoothing,
    help="none, majority:K (last K windows) or ema:ALPHA (average of probabilities).",
)
@click.option("--out", type=click.Path(file_okay=False), help="Folder for timeline.csv and timeline.json.")
@click.option("--plot", type=click.Path(dir_okay=False), help="PNG of the first recording: signal, true and predicted.")
@click.option(
    "--dump-golden",
    "golden",
    type=click.Path(file_okay=False),
    help="Folder for the firmware's golden vectors of the first recording (tflm or c).",
)
@click.option(
    "--units",
    callback=parse_units,
    help="Units of the RECORDING files, e.g. acc=m/s^2,gyro=deg/s.  [default: g, rad/s]",
)
@click.option(
    "--time-unit", type=click.Choice(["s", "ms", "us", "ns"]), help="Unit of the files' time column.  [default: s]"
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False),
    help="A JSON file with dataset.json's column keys (columns, time_unit, rate_hz, csv, gravity, units) "
    "for RECORDING files in other columns.",
)
@jobs_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def simulate(
    bundle: str,
    recordings: tuple[str, ...],
    dataset: str | None,
    subjects: tuple[str, ...] | None,
    split: str | None,
    runtime: str,
    smoothing: str,
    out: str | None,
    plot: str | None,
    golden: str | None,
    units: object,
    time_unit: str | None,
    mapping: str | None,
    jobs: int,
    as_json: bool,
    force: bool,
) -> None:
    """Replay recordings sample by sample through BUNDLE: front end, int8, runtime, smoothing.

    RECORDING files are CSV (.csv or .csv.gz: time_s,acc_x,acc_y,acc_z[,gyro_x,gyro_y,gyro_z][,label];
    other columns, units and clocks through --units, --time-unit and --mapping); other steady rates are
    resampled to the bundle's; labels the bundle does not know count as unlabelled. Metrics count only
    windows whose samples all carry one activity; the others are counted apart; a recording without
    labels gets its predictions (windows per label), no accuracy.

    \b
    Examples:
      harlite simulate models/cnn_lstm --dataset hapt --split test --smoothing majority:3 --out sim
      harlite simulate models/cnn_lstm walk.csv --plot walk.png --dump-golden firmware/tests/golden
      harlite simulate models/cnn_lstm --dataset my_data/ --jobs 4 --out sim
      harlite simulate models/cnn_lstm phone.csv --units acc=m/s^2 --time-unit ns
    """
    from harlite.data.datasets import read_config_json
    from harlite.data.layout import Layout, Units

    if split is not None and subjects is not None:
        raise click.UsageError("give --subjects or --split, not both.")
    config = read_config_json(Path(mapping)) if mapping is not None else {}
    if time_unit is not None:
        config["time_unit"] = time_unit
    layout = Layout.from_config(config) if config else None
    units = units if units is not None else Units(**config.get("units", {}))
    summary = run(
        bundle,
        list(recordings),
        dataset=dataset,
        subjects=subjects,
        split=split,
        runtime=runtime,
        smoothing=smoothing,
        out=out,
        plot=plot,
        golden=golden,
        force=force,
        log=lambda message: click.echo(message, err=True),
        units=units,
        layout=layout,
        jobs=jobs,
    )
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary))


def format_summary(summary: dict) -> str:
    """A few human lines: windows, accuracy and macro-F1 (raw and smoothed), cost, files."""
    w, lat = summary["windows"], summary["latency"]
    lines = [
        f"{w['total']} windows from {len(summary['recordings'])} recording(s): {w['pure']} pure, "
        f"{w['straddling']} straddling an activity change, {w['unlabelled']} with unlabelled samples, "
        f"{w['no_labels']} without labels"
    ]
    for which, m in (summary["metrics"] or {}).items():
        measured = [name for name, c in m["per_class"].items() if c["support"]]
        scope = f"; measured on {', '.join(measured)}" if len(measured) < len(m["per_class"]) else ""
        lines.append(f"{which:>8}: accuracy {m['accuracy']:.2%}, macro-F1 {m['macro_f1']:.3f} (n={m['n']}{scope})")
    if not summary["metrics"] and w["total"]:
        shown = ", ".join(f"{name} {n}" for name, n in summary["predictions"]["smoothed"].items())
        lines.append(f"no labelled window to score; predicted (windows): {shown}")
    if lat["invoke_ms"]:
        ms = lat["invoke_ms"]
        cost = (
            f"{ms['mean']:.3f} ms per window (batched)"
            if lat["batched"]
            else f"invoke {ms['mean']:.3f} ms mean, {ms['p50']:.3f} p50, {ms['p99']:.3f} p99"
        )
        lines.append(
            f"{summary['runtime']}: {cost}; {lat['windows_per_s']:.0f} windows/s end to end "
            f"({lat['windows_per_cpu_s']:.0f} per CPU second)"
        )
    lines += [f"wrote {f}" for f in summary["files"]]
    return "\n".join(lines)

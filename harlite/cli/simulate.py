"""``harlite simulate``: replay recordings through a bundle as the board would run it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harlite.cli.options import jobs_option, parse_groups, parse_units
from harlite.core.orientation import rotation_matrix
from harlite.core.smoothing import parse_smoothing
from harlite.run.timeline import run

SPLITS = ("test", "train")


def _smoothing(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else str(parse_smoothing(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _rotation(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else (rotation_matrix(value), value)[1]
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
    callback=_smoothing,
    help="Post-processing: none, majority:K (last K windows) or ema:ALPHA (average of probabilities), "
    "optionally followed by dwell:D (windows a new label must last) and hysteresis:H (margin a new "
    "label's score must win by), e.g. 'ema:0.3 dwell:2'.  [default: the bundle's calibrated one]",
)
@click.option(
    "--rotate",
    "rotation",
    callback=_rotation,
    metavar="AXIS:DEG[,AXIS:DEG]",
    help="Replay as if the device were mounted turned: turns about its own axes in degrees, in order, "
    "e.g. x:180 (UCI HAR's x is vertical when the wearer stands) or x:90,y:20.",
)
@click.option(
    "--no-unknown",
    "no_unknown",
    is_flag=True,
    help="Ignore the bundle's unknown decision: every window gets one of its activities.",
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
    smoothing: str | None,
    rotation: str | None,
    no_unknown: bool,
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
    """Replay recordings sample by sample through BUNDLE: front end, int8, runtime, unknown, smoothing.

    RECORDING files are CSV (.csv or .csv.gz: time_s,acc_x,acc_y,acc_z[,gyro_x,gyro_y,gyro_z][,label];
    other columns, units and clocks through --units, --time-unit and --mapping); other steady rates are
    resampled to the bundle's. A window the bundle's unknown decision rejects is 'unknown'. Accuracy
    counts only windows whose samples all carry one activity; samples labelled with an activity the
    bundle does not know should come out unknown (the foreign windows' figure); stream metrics (switches
    per minute, delay after a change, segment F1) compare the reported labels with the recordings'
    labels. A recording without labels gets its predictions (windows per label), no accuracy.

    \b
    Examples:
      harlite simulate models/cnn_lstm --dataset hapt --split test --out sim
      harlite simulate models/cnn_lstm --split test --rotate x:180 --smoothing none
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
        rotation=rotation,
        unknown=not no_unknown,
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
    u = summary.get("unknown")
    if u and u["pure_windows"]:
        lines.append(f" unknown: {u['unknown']} of {u['windows']} windows; {u['pure_unknown_rate']:.2%} of the pure "
                     f"windows, the others {u['accepted_accuracy'] or 0:.2%} right"
                     + (f"; {u['foreign_unknown_rate']:.1%} of {u['foreign_windows']} windows of activities the "
                        "bundle does not know" if u["foreign_windows"] else ""))  # fmt: skip
    s = summary.get("stream")
    if s and s["changes"]:
        lines.append(f"  stream ({summary['smoothing']}): {s['switches_per_min']:.2f} switches/min (true "
                     f"{s['true_switches_per_min']:.2f}), delay after a change {s['delay_median_s'] or 0:.1f} s median, "
                     f"{s['delay_p90_s'] or 0:.1f} s p90 ({s['missed_changes']} of {s['changes']} missed), segment F1 "
                     f"{s['segment_f1']:.3f}")  # fmt: skip
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

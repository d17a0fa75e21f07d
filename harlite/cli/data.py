"""``harlite data``: inspect the data sources, import other people's recordings, export HAPT as CSV, fetch UCI HAR."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harlite.cli.options import data_options, data_spec, parse_units
from harlite.data.hapt import SUBJECTS, export_hapt
from harlite.data.importers import FORMATS, import_source
from harlite.data.uci_har import describe_uci_har, fetch_uci_har
from harlite.data.windows import describe

SOURCES = ("hapt", "uci-har")


def _hapt_subjects(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """``9,18``: HAPT subject ids 1-30."""
    subjects = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in subjects if s not in SUBJECTS]
    if not subjects or unknown:
        which = f"unknown subject {', '.join(unknown)}" if unknown else "no subject given"
        raise click.BadParameter(f"{which}: HAPT subjects are 1-30, e.g. 9,18.")
    return subjects


@click.group()
def data() -> None:
    """Your recordings, the embedded UCI HAPT set (default) and the official UCI HAR windows.

    \b
    Example:
      harlite data info --data my_recordings/
      harlite data info
      harlite data import phyphox_walk.csv --format phyphox --label walk --subject ann --out my_data
      harlite data export --subjects 9,18 --out recordings/
    """


@data.command()
@data_options
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default=None,
    help="hapt (the default without --data) or uci-har (the official pre-cut windows, with --from).",
)
@click.option("--from", "path", type=click.Path(exists=True, path_type=Path), help="UCI HAR zip or folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def info(data: Path | None, test_data: Path | None, test_subjects: tuple[str, ...] | None, val_subjects: int | None,
         rate_hz: float | None, window: str | None, hop: str | None, source: str | None, path: Path | None,
         as_json: bool) -> None:  # fmt: skip
    """Recordings, subjects, rate, hours, sensors and labelled windows per class of each split, with warnings
    (a class with very few windows, a class missing from the test split, very unequal classes).

    The split is the one 'harlite train' and 'harlite build' make with the same options.

    \b
    Example:
      harlite data info --data my_recordings/
      harlite data info --data wrist/ --test-data wrist_test/ --json
      harlite data info --source uci-har --from UCI_HAR_Dataset.zip
    """
    if source == "uci-har" or path is not None:
        if path is not None and source != "uci-har":
            raise click.UsageError("--from names a UCI HAR copy: use it with --source uci-har.")

        summary = describe_uci_har(path)
    else:
        if source == "hapt" and data is not None:
            raise click.UsageError("give --data or --source hapt, not both.")

        summary = describe(data_spec(data, test_data, test_subjects, val_subjects, rate_hz, window, hop))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(format_info(summary))


def format_info(summary: dict) -> str:
    """data info for people: one paragraph, a table of windows per class and split, the warnings."""
    about = "about " if summary["source"] == "uci-har" else ""  # its windows overlap: hours are estimated
    lines = [f"{summary['source']}: {summary.get('recordings', '?')} recordings, {len(summary['subjects'])} subjects, "
             f"{about}{summary['hours']:.2f} h, sensors {', '.join(summary['sensors'])}"
             f"{' (linear acceleration: gravity removed)' if summary.get('gravity') == 'removed' else ''}, "
             f"rate {', '.join(f'{r:g}' for r in summary.get('rates_hz', [])) or '?'} Hz"]  # fmt: skip
    if "protocol" in summary:
        p = summary["protocol"]
        lines.append(f"model protocol: {p['rate_hz']:g} Hz, window {p['window']}, hop {p['hop']}, "
                     f"channels {', '.join(p['channels'])}")  # fmt: skip
    if "split" in summary:
        test = summary["groups"]["test"]
        lines.append(f"split by {summary['split']}; test: {', '.join(test) if test else 'the --test-data folder'}; "
                     f"validation: {', '.join(summary['groups']['val']) or 'none'}")  # fmt: skip
    parts = list(summary["windows"])
    lines.append(f"{'windows':<24}" + "".join(f"{p:>8}" for p in parts))
    for name in [*summary["labels"], "total"]:
        lines.append(f"{name:<24}" + "".join(f"{summary['windows'][p].get(name, 0):>8}" for p in parts))
    lines += [f"warning: {w}" for w in summary.get("warnings", [])]
    return "\n".join(lines)


@data.command()
@click.option("--subjects", required=True, callback=_hapt_subjects, help="HAPT subject ids 1-30, comma-separated.")
@click.option("--as-dataset", is_flag=True, help="Write OUT/<subject>/<experiment>.csv, a dataset folder for --data.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--gzip", "compress", is_flag=True, help="Write .csv.gz instead of .csv.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def export(subjects: tuple[str, ...], as_dataset: bool, out: Path, compress: bool, force: bool) -> None:
    """Write subjects' continuous HAPT recordings as CSV, one file per experiment.

    The files are in harlite's recording format (time_s, acc in g, gyro in rad/s, label), ready for
    'harlite simulate'.

    \b
    Example:
      harlite data export --subjects 9,18 --out recordings/
      # -> recordings/hapt_exp17_user09.csv ...
      harlite data export --subjects 1,2,3,4,5 --as-dataset --out my_data/
      # -> my_data/1/hapt_exp01_user01.csv ...: a dataset for 'harlite build --data my_data'
    """
    for path in export_hapt(subjects, out, force=force, compress=compress, as_dataset=as_dataset):
        click.echo(str(path))


@data.command()
@click.argument("dataset", type=click.Choice(["uci-har"]))
@click.option("--from", "path", type=click.Path(exists=True, path_type=Path), help="A downloaded UCI HAR zip.")
@click.option("--force", is_flag=True, help="Fetch again even if a valid copy is cached.")
def fetch(dataset: str, path: Path | None, force: bool) -> None:
    """Download the official UCI HAR dataset into the cache (or store a zip you downloaded).

    \b
    Example:
      harlite data fetch uci-har
      harlite data fetch uci-har --from ~/Downloads/human+activity+recognition+using+smartphones.zip
    """
    click.echo(str(fetch_uci_har(force=force, source=path)))


@data.command(name="import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="phyphox (a CSV export), sensor-logger (an export folder or zip), wisdm (WISDM v1.1 raw "
    "text), csv (any CSV with time and x, y, z columns; see --mapping).",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="The dataset folder to write."
)
@click.option("--label", help="The activity of every sample, for sources without labels.")
@click.option("--subject", help="The subject folder under --out (WISDM: its users).  [default: subject1]")
@click.option(
    "--units", callback=parse_units, help="Units of the source where it does not say, e.g. acc=m/s^2,gyro=deg/s."
)
@click.option(
    "--gravity", type=click.Choice(["removed"]), help="Accept acceleration without gravity (linear acceleration)."
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="csv: a JSON file with dataset.json's column keys (columns, time_unit, rate_hz, csv, units).",
)
@click.option("--force", is_flag=True, help="Replace files an earlier import wrote.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def import_(source: Path, fmt: str, out: Path, label: str | None, subject: str | None, units: object,
            gravity: str | None, mapping: Path | None, force: bool, as_json: bool) -> None:  # fmt: skip
    """Turn recordings from a phone logger or a public dataset into a harlite dataset folder.

    SOURCE is a file, an export folder or a .zip of one. Each stretch of steady clock becomes one
    recording OUT/SUBJECT/NAME.csv in harlite's format (acceleration in g with gravity, angular rate in
    rad/s, the label column); what is left out (a zero timestamp, a record cut short) is counted.

    \b
    Examples:
      harlite data import "Acceleration with g 2024-06-10.csv" --format phyphox --label walk --out my_data
      harlite data import 2024-06-10_14-45-36.zip --format sensor-logger --label stairs --subject ann --out my_data
      harlite data import WISDM_ar_v1.1_raw.txt --format wisdm --out wisdm
      harlite data info --data my_data
    """
    from harlite.data.datasets import read_config_json

    config = None if mapping is None else read_config_json(mapping)
    if config is not None and units is None and "units" in config:
        from harlite.data.layout import Units

        units = Units(**config["units"])
    result = import_source(source, fmt, out, label=label, subject=subject, gravity=gravity, units=units,
                           mapping=config, force=force)  # fmt: skip
    summary = result.to_dict()
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    for f in summary["files"]:
        labels = ", ".join(f["labels"]) or "unlabelled"
        click.echo(f"{f['path']}: {f['samples']} samples at {f['rate_hz']:g} Hz, {', '.join(f['sensors'])}; {labels}")
    for reason, n in summary["left_out"].items():
        click.echo(f"left out {n} {reason}", err=True)
    for note in summary["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"imported {summary['samples']} samples into {len(summary['files'])} recording(s) under {out}", err=True)

"""``harlite data``: inspect the data sources, export HAPT recordings as CSV, fetch UCI HAR."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harlite.protocol import ALL_SUBJECTS, LABELS

SOURCES = ("hapt", "uci-har")


def _subjects(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    """Parse ``9,18`` into subject ids 1-30."""
    try:
        subjects = tuple(int(s) for s in value.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give subject ids separated by commas, e.g. 9,18.") from None
    unknown = sorted(set(subjects) - set(ALL_SUBJECTS))
    if not subjects or unknown:
        which = f"unknown subject {', '.join(map(str, unknown))}" if unknown else "no subject given"
        raise click.BadParameter(f"{which}: HAPT subjects are 1-30, e.g. 9,18.")
    return subjects


@click.group()
def data() -> None:
    """Real recordings: the embedded UCI HAPT set (default) and the official UCI HAR windows.

    \b
    Example:
      harlite data info
      harlite data export --subjects 9,18 --out recordings/
    """


@data.command()
@click.option("--source", type=click.Choice(SOURCES), default="hapt", show_default=True, help="Data source.")
@click.option("--from", "path", type=click.Path(exists=True, path_type=Path), help="UCI HAR zip or folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def info(source: str, path: Path | None, as_json: bool) -> None:
    """Subjects, hours of signal and labelled windows per class (train/test subjects).

    \b
    Example:
      harlite data info --source hapt --json
    """
    from harlite.data.recordings import describe_source

    if path is not None and source != "uci-har":
        raise click.UsageError("--from names a UCI HAR copy: use it with --source uci-har.")
    summary = describe_source(source, path)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    about = "about " if source == "uci-har" else ""  # its windows overlap: hours are estimated
    click.echo(f"source {source}: {len(summary['subjects'])} subjects, {about}{summary['hours']:.2f} h of signal")
    click.echo(f"test subjects: {', '.join(map(str, summary['test_subjects']))}")
    click.echo(f"{'class':<20}{'train':>8}{'test':>8}")
    for name in (*LABELS, "total"):
        click.echo(f"{name:<20}{summary['windows']['train'][name]:>8}{summary['windows']['test'][name]:>8}")


@data.command()
@click.option("--subjects", required=True, callback=_subjects, help="HAPT subject ids 1-30, comma-separated.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--gzip", "compress", is_flag=True, help="Write .csv.gz instead of .csv.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def export(subjects: tuple[int, ...], out: Path, compress: bool, force: bool) -> None:
    """Write subjects' continuous HAPT recordings as CSV, one file per experiment.

    The files are in harlite's recording format (time_s, acc in g, gyro in rad/s, label), ready for
    'harlite simulate'.

    \b
    Example:
      harlite data export --subjects 9,18 --out recordings/
      # -> recordings/hapt_exp17_user09.csv ...
    """
    from harlite.data.hapt import export_hapt

    for path in export_hapt(subjects, out, force=force, compress=compress):
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
    from harlite.data.uci_har import fetch_uci_har

    click.echo(str(fetch_uci_har(force=force, source=path)))

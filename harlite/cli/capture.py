"""``harlite capture``: record a labelled dataset from a board over serial."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harlite.data.capture import DEFAULT_SUBJECT
from harlite.data.capture import capture as record
from harlite.data.serial_board import BAUD, WAIT_S
from harlite.data.serial_board import list_ports as find_ports
from harlite.errors import HarliteError


@click.command()
@click.option("--port", help="The board's serial port, e.g. /dev/ttyACM0 or COM3 (see --list-ports).")
@click.option("--label", help="The activity being recorded (the label column); with --labels, the one to start with.")
@click.option("--labels", help="Comma-separated labels for keys 1-9, e.g. walk,sit,brush (interactive mode).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="The dataset folder.")
@click.option(
    "--subject",
    default=DEFAULT_SUBJECT,
    show_default=True,
    help="Who or what wears the board: the recordings' folder under --out.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds of samples (default: until q or Ctrl-C).",
)
@click.option("--baud", type=click.IntRange(min=1), default=BAUD, show_default=True, help="Serial baud rate.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0.1),
    default=WAIT_S,
    show_default=True,
    help="Seconds to wait for the board's CSV header (and, later, for any line).",
)
@click.option("--list-ports", is_flag=True, help="List the serial ports and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def capture(port: str | None, label: str | None, labels: str | None, out: Path | None, subject: str,
            seconds: float | None, baud: int, wait: float, list_ports: bool, as_json: bool) -> None:  # fmt: skip
    """Record the board's samples into a dataset: OUT/SUBJECT/LABEL-YYYYmmdd-HHMMSS.csv.

    The board runs firmware/arduino/harlite_har (or prints harlite's CSV over serial). Every sample
    row is written as it arrives, with the label in force when it arrived; a file is renamed into
    place only when complete, so Ctrl-C or an unplugged board keeps every complete sample. Samples
    lost on the wire (a jump in the board's sample index, a '# gap' or garbled line) are counted, and
    the recording is split there (a new file). The board's sensors and rate must match the
    recordings already in OUT. A status line on stderr shows the time, samples/s against the board's
    rate, the label, the board's prediction and the samples lost.

    \b
    Keys (when stdin is a terminal): 1-9 switch to that label of --labels, 0 or space to
    unlabelled, q stops (so does Ctrl-C); each sample keeps the label in force when it arrived.

    \b
    Examples:
      harlite capture --list-ports
      harlite capture --port /dev/ttyACM0 --label walking --out mydata --subject alice --seconds 60
      harlite capture --port /dev/ttyACM0 --labels walk,sit,brush --out mydata --subject bob
    """
    if list_ports:
        ports = find_ports()
        if as_json:
            click.echo(json.dumps(ports, indent=2))
        for p in [] if as_json else ports:
            click.echo(
                f"{p['device']}\t{p['description']}\t{p['hwid']}" + ("\t(Arduino)" if p["vid"] == 0x2341 else "")
            )
        if not ports and not as_json:
            click.echo("no serial ports found: plug the board in (a charge-only USB cable shows none)", err=True)
        return
    if port is None or out is None:
        raise click.UsageError("give --port and --out (or --list-ports).")
    choices = tuple(name.strip() for name in labels.split(",") if name.strip()) if labels else ()
    if label is None and not choices:
        raise click.UsageError("give --label NAME, or --labels A,B,C to switch labels with keys 1-9.")
    if len(choices) > 9:
        raise click.UsageError(f"--labels has {len(choices)} names; keys 1-9 pick at most 9.")
    result = record(port, out, label, choices, subject=subject, seconds=seconds, baud=baud, wait=wait)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for path in result.files:
            click.echo(str(path))
    kept = f"{result.samples} samples in {len(result.files)} recording{'' if len(result.files) == 1 else 's'}"
    lost = f", {result.lost_samples} lost" if result.lost_samples else ""
    garbled = f", {result.garbled_lines} garbled lines" if result.garbled_lines else ""
    if result.error:
        raise HarliteError(f"{result.error}; kept {kept}{lost}{garbled} under {out}")
    click.echo(f"capture: {kept}{lost}{garbled} ({result.stopped})", err=True)

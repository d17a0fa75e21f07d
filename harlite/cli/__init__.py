"""The ``harlite`` command: a Click group whose commands load lazily (no TensorFlow at start-up).

Each stage's command lives in ``harlite/cli/<stage>.py`` and only parses options, calls one library
function and prints; the work happens in the library modules.
"""

from __future__ import annotations

import importlib

import click

from harlite import __version__

# command name -> "module:attribute"; the module is imported only when the command runs or is listed.
COMMANDS = {
    "data": "harlite.cli.data:data",
    "train": "harlite.cli.train:train",
    "qat": "harlite.cli.train:qat",
    "convert": "harlite.cli.convert:convert",
    "evaluate": "harlite.cli.train:evaluate",
    "parity": "harlite.cli.parity:parity",
    "simulate": "harlite.cli.simulate:simulate",
    "build": "harlite.cli.build:build",
    "bench": "harlite.cli.build:bench",
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> object:
        """Exit 2 for bad input as for bad usage; 1 stays for a failed check (parity, say)."""
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            error.exit_code = 2
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harlite")
def main() -> None:
    """harlite: a small, accurate activity classifier from a dataset to a microcontroller or a phone.

    \b
    The pipeline, one command per stage:
      data      real recordings (embedded default: UCI HAPT) and their windows
      train     a compact Keras LSTM, seeded and reproducible
      qat       quantization-aware fine-tuning (the LSTM included) and a PTQ baseline
      convert   int8/float32/float16 .tflite, TFLM C sources, manifest.json
      evaluate  accuracy, macro-F1 and confusion matrix on the test subjects
      parity    Keras vs LiteRT vs TFLM, with thresholds
      simulate  replay recordings sample by sample through the firmware's front end
      build     all of the above in one resumable run
      bench     every stage's figures in one JSON

    \b
    Example:
      harlite build --out runs/default
    """

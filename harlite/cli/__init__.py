"""The ``harlite`` command: a Click group whose commands load lazily (no TensorFlow at start-up).

Each stage's command lives in ``harlite/cli/<stage>.py`` and only parses options, calls one library
function and prints; the work happens in the library modules.
"""

from __future__ import annotations

import importlib
import os

import click

from harlite import __version__
from harlite.errors import HarliteError
from harlite.io.terminal import printable
from harlite.tf import verbose

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
    "capture": "harlite.cli.capture:capture",
    "export": "harlite.cli.export:export",
    "serve": "harlite.cli.serve:serve",
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
        """Bad input or environment: one line on stderr and exit 2; 1 stays for a failed check (parity, say).

        Nothing reaches the user as a traceback unless ``--verbose`` (or HARLITE_VERBOSE=1) asks for it.
        """
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            error.exit_code = 2
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except HarliteError as error:
            raise _Failure(printable(str(error)), 2) from None
        except KeyboardInterrupt:
            raise _Failure("interrupted; files already written are complete (harlite writes atomically)", 130) from None
        except OSError as error:
            if verbose():
                raise
            where = f"{printable(str(error.filename))}: " if error.filename else ""
            raise _Failure(
                f"{where}{error.strerror or error}; check the path, its permissions and free space", 2
            ) from None
        except Exception as error:  # a bug: say so in one line, the traceback on request
            if verbose():
                raise
            raise _Failure(
                f"internal error ({type(error).__name__}: {error}); rerun with --verbose for the "
                "traceback and report it",
                1,
            ) from None


class _Failure(click.ClickException):
    """A one-line error with its own exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        os.environ["HARLITE_VERBOSE"] = "1"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harlite")
@click.option(
    "--verbose",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_verbose,
    help="Show TensorFlow's own log and full tracebacks.",
)
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
      capture   record a labelled dataset from a board over serial
      export    the model as a folder: a C library (Arduino, CMake: ESP-IDF, Zephyr), a web page
      serve     that page over HTTPS for a phone, its recordings into a dataset

    \b
    Example:
      harlite build --out runs/default
    """

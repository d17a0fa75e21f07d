"""Options that several commands share: which data, how it is split, the protocol (rate, window, hop)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from harlite.data.windows import HAPT_SOURCE, DataSpec
from harlite.pipeline.unknown import DEFAULT_RATE


def parse_groups(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    groups = tuple(g.strip() for g in value.split(",") if g.strip())
    if not groups:
        raise click.BadParameter("give subject names separated by commas, e.g. alice,bob (HAPT: 2,4).")
    return groups


def _length(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"\d+|\d+(\.\d*)?s|\.\d+s", value.strip()):
        raise click.BadParameter(f"{value!r}: give samples (128) or seconds (2.56s).")
    return None if value is None else value.strip()


def _samples(value: str | None, rate: float, option: str) -> int | None:
    """``128`` or ``2.56s`` in samples at ``rate``."""
    if value is None:
        return None
    samples = round(float(value[:-1]) * rate) if value.endswith("s") else int(value)
    if samples < 1:
        raise click.BadParameter(f"{value!r} is less than one sample at {rate:g} Hz.", param_hint=option)
    return samples


def data_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--data, --test-data, --test-subjects, --val-subjects, --rate, --window, --hop, --transitions-as-other."""
    options = [
        click.option(
            "--data",
            "data",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            default=None,
            help="A folder of your CSV recordings (one subfolder per subject; docs/data.md). "
            "Default: the embedded UCI HAPT recordings.",
        ),
        click.option(
            "--test-data",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            default=None,
            help="A folder of recordings that is the test split (same labels and sensors as --data).",
        ),
        click.option(
            "--test-subjects",
            callback=parse_groups,
            default=None,
            help="Subjects (first-level folder names) held out for testing, e.g. alice,bob. "
            "Default: 20% of the subjects (HAPT: UCI HAR's nine).",
        ),
        click.option(
            "--val-subjects",
            type=click.IntRange(0),
            default=None,
            help="Training subjects held out for validation (QAT selects on them). Default: 15% (HAPT: 4).",
        ),
        click.option(
            "--rate",
            "rate_hz",
            type=click.FloatRange(1, 5000),
            default=None,
            help="Sample rate of the model in Hz; recordings are resampled to it.  [default: 50]",
        ),
        click.option(
            "--window",
            callback=_length,
            default=None,
            help="Window in samples or seconds (128 or 2.56s).  [default: 128]",
        ),
        click.option(
            "--hop", callback=_length, default=None, help="Hop between windows in samples or seconds.  [default: 64]"
        ),
        click.option(
            "--transitions-as-other",
            "transitions",
            is_flag=True,
            help="HAPT: train its postural transitions as a class 'other', which is reported unknown (a "
            "dataset folder names its 'other' labels in dataset.json).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def data_spec(data: Path | None, test_data: Path | None, test_subjects: tuple[str, ...] | None,
              val_subjects: int | None, rate_hz: float | None, window: str | None, hop: str | None,
              transitions: bool = False) -> DataSpec:  # fmt: skip
    """The DataSpec the data options describe."""
    if test_data is not None and test_subjects is not None:
        raise click.UsageError("give --test-data or --test-subjects, not both.")
    if test_data is not None and data is None:
        raise click.UsageError("--test-data needs --data: the HAPT default has its own test subjects.")
    if transitions and data is not None:
        raise click.UsageError("--transitions-as-other is for the HAPT default: name a dataset's 'other' labels in "
                               "its dataset.json.")  # fmt: skip
    rate = rate_hz or 50.0
    return DataSpec(
        data=HAPT_SOURCE if data is None else str(data),
        test_data=None if test_data is None else str(test_data),
        test_subjects=test_subjects,
        val_subjects=val_subjects,
        rate_hz=rate_hz,
        window=_samples(window, rate, "--window"),
        hop=_samples(hop, rate, "--hop"),
        transitions=transitions,
    )


workers_option = click.option(
    "--workers", type=click.IntRange(2), default=None,
    help="Train with this many worker processes on this machine, a TensorFlow cluster over loopback (as "
         "several machines would; docs/scale.md). Without it, TF_CONFIG (if set) makes this process one "
         "worker of a cluster.")  # fmt: skip
stream_option = click.option(
    "--stream/--in-memory", default=None,
    help="Stream the training windows from the window cache, or hold them in memory.  [default: stream "
         "when the split is larger than 64 MB]")  # fmt: skip
jobs_option = click.option(
    "--jobs", type=click.IntRange(1), default=1, show_default=True,
    help="Worker processes for the recordings (or windows), each with its own runtime; the results are "
         "those of one process. Pays for many recordings: each worker first imports its runtime.")  # fmt: skip


def parse_units(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    """``acc=m/s^2,gyro=deg/s``: the units of a recording's columns (harlite.data.layout.Units)."""
    if value is None:
        return None
    from harlite.data.layout import UNITS, Units

    pairs = [part.partition("=") for part in value.split(",") if part.strip()]
    given = {k.strip(): v.strip() for k, _, v in pairs}
    wrong = [k for k, eq, v in pairs if not eq or k.strip() not in UNITS or v.strip() not in UNITS[k.strip()]]
    if not given or wrong:
        choices = "; ".join(f"{k}={'|'.join(v)}" for k, v in UNITS.items())
        raise click.BadParameter(f"{value!r}: give sensor=unit pairs, e.g. acc=m/s^2,gyro=deg/s ({choices}).")
    return Units(**given)


def unknown_rate_option(zero: str) -> Callable[..., Any]:
    """--unknown-rate, whose 0 means ``zero``."""
    return click.option(
        "--unknown-rate",
        type=click.FloatRange(0, 1, max_open=True),
        default=DEFAULT_RATE,
        show_default=True,
        help=f"Share of the validation subjects' windows the unknown decision may call unknown (0: {zero}).",
    )

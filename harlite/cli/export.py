"""``harlite export``: a bundle's model as a folder another tool builds or hosts (Arduino, CMake, the web)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harlite.pipeline.export import FORMATS
from harlite.pipeline.export import export as run


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(FORMATS)),
    required=True,
    help="; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values()) + ".",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The folder to write: a new one, or one harlite exported to before.",
)
@click.option("--force", is_flag=True, help="Replace --out even if harlite did not write it, or a file in it changed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written (files and their sha256) as JSON.")
def export(bundle: Path, fmt: str, out: Path, force: bool, as_json: bool) -> None:
    """Write BUNDLE's model as a folder of format --format into --out.

    arduino, cmake: a self-contained C library: the API (harlite.h: push samples, get a prediction per
    window), the front end, smoothing, serial lines and the model in harlite's C engine (no TFLite Micro,
    no allocator), the model's config header, a README and the build system's files; it compiles
    warning-free as C99 and as C++. web: index.html (live activity, probabilities, timeline, recording),
    harlite.js (an ES module: loadClassifier), harlite.wasm, app.js, style.css, manifest.json; any web
    server can host it, and a phone's browser needs HTTPS (or localhost) for its motion sensors:
    harlite serve does both.

    \b
    Examples:
      harlite export models/cnn_lstm --format arduino --out harlite_cnn_lstm
      harlite export models/cnn_lstm --format cmake --out components/harlite
      harlite export models/cnn_lstm --format web --out web
    """
    record = run(bundle, fmt, out, force=force)
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        guide = (
            " (README.md says how to use it)"
            if "README.md" in record["files"]
            else " (serve it over HTTPS, as harlite serve does, and open index.html)"
        )
        click.echo(f"{out}: {fmt} export of {record['bundle']}, {len(record['files'])} files{guide}")

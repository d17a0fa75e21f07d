"""``harlite export``: a bundle's model as a folder another tool builds or hosts."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--format",
    "kind",
    type=click.Choice(["web"]),
    required=True,
    help="web: a static folder that runs the model in a browser (the board's C in WebAssembly).",
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="The folder to write.")
@click.option("--force", is_flag=True, help="Overwrite files of these names that harlite did not write.")
@click.option("--json", "as_json", is_flag=True, help="Print the files and their sizes as JSON on stdout.")
def export(bundle: str, kind: str, out: str, force: bool, as_json: bool) -> None:
    """Write BUNDLE's model as a folder of format --format into --out.

    web: index.html (live activity, probabilities, timeline, recording), harlite.js (an ES module:
    loadClassifier), harlite.wasm, app.js, style.css, manifest.json. Any web server can host it; a phone's
    browser needs HTTPS (or localhost) for its motion sensors: harlite serve does both.

    \b
    Example:
      harlite export models/cnn_lstm --format web --out web
    """
    from harlite.bundle.loader import load_bundle
    from harlite.web.export import export_web

    result = export_web(load_bundle(bundle), out, force)
    click.echo(f"wrote {result['out']}: {len(result['files'])} files, {result['bytes']:,} bytes", err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2))

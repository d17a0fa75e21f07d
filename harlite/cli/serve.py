"""``harlite serve``: a bundle's web page for a phone on the same network; its recordings into a dataset."""

from __future__ import annotations

import click


@click.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--data",
    type=click.Path(file_okay=False),
    help="Write the phone's recordings into this dataset folder (DATA/<subject>/<label>-<time>.csv).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 lets a phone on your network in (with the URL's token).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8443,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
def serve(bundle: str, data: str | None, host: str, port: int) -> None:
    """Serve BUNDLE's web page (live activity, recording) over HTTPS until Ctrl-C.

    The first line on stdout is the page's URL with its token, then its QR code; a status line (phones,
    samples/s, recordings saved) goes to stderr. The certificate is self-signed, made on first use and
    kept in harlite's cache folder.

    \b
    Example:
      harlite serve models/cnn_lstm --host 0.0.0.0 --data my_data
    """
    from harlite.bundle.loader import load_bundle
    from harlite.web.serve import serve as run

    run(load_bundle(bundle), data=data, host=host, port=port)

"""Hostile inputs shared by the tests: Keras models that run code when tf-keras loads them."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def _marker_lambda(marker: Path) -> Any:
    """A function as an attacker would store it: it writes ``marker`` whenever the layer is built."""
    return eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('pwned'), x)[1]")  # noqa: S307


def _lambda_model(marker: Path) -> Any:
    from harlite.tf import keras

    k = keras()
    inputs = k.Input(shape=(128, 9))
    outputs = k.layers.Dense(6, activation="softmax")(k.layers.LSTM(4)(k.layers.Lambda(_marker_lambda(marker))(inputs)))
    return k.Model(inputs, outputs)


def hostile_models(folder: Path) -> dict[str, Path]:
    """model.keras files in ``folder`` that run code when tf-keras loads them, HDF5 and zip, each with a
    Lambda that writes the file ``marker``: {"hdf5", "zip", "marker"}."""
    marker = folder / "pwned"
    model = _lambda_model(marker)
    for name in ("hdf5", "zip"):
        (folder / name).mkdir()
    with warnings.catch_warnings():  # "HDF5 is legacy": the attacker does not mind
        warnings.simplefilter("ignore", UserWarning)
        model.save(folder / "model.h5")
    (folder / "model.h5").rename(folder / "hdf5" / "model.keras")  # HDF5, given the .keras name
    model.save(folder / "zip" / "model.keras")
    marker.unlink()  # building the model ran the lambda once; loading must not run it again
    return {"hdf5": folder / "hdf5" / "model.keras", "zip": folder / "zip" / "model.keras", "marker": marker}

"""Run-folder I/O: the model, what its input is (protocol, normalization, data), versions.

A run folder of ``harlite train`` holds ``model.keras``, ``protocol.json``, ``history.json`` and
``metrics.json``; ``harlite qat`` adds ``qat/`` with the same files for the int8-ready model. A
bundle's ``manifest.json`` carries the same ``labels``, ``frontend``, ``normalization`` and
``dataset`` fields as ``protocol.json``, so either describes a model's input.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harlite import __version__
from harlite.bundle.keras import load_keras
from harlite.bundle.loader import load_bundle
from harlite.bundle.manifest import MANIFEST
from harlite.core.protocol import Protocol
from harlite.data.windows import DataSpec
from harlite.errors import BundleError
from harlite.io.files import read_json, write_json

PROTOCOL_FILE = "protocol.json"


@dataclass(frozen=True)
class ModelInput:
    """What a model expects and where its data came from: protocol, normalization, data spec."""

    protocol: Protocol
    mean: np.ndarray
    std: np.ndarray
    data: DataSpec
    dataset: dict[str, Any]  # the split as trained: kind and groups (``Split.info()``)

    def to_dict(self) -> dict[str, Any]:
        """protocol.json (and the manifest's fields of the same names)."""
        return {
            **self.protocol.to_manifest(),
            "normalization": {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]},
            "dataset": self.dataset,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInput:
        dataset = d.get("dataset") or {}
        return cls(
            Protocol.from_manifest(d),
            np.asarray(d["normalization"]["mean"], np.float32),
            np.asarray(d["normalization"]["std"], np.float32),
            DataSpec.from_dict(dataset),
            dataset,
        )


def write_model_input(folder: str | Path, model_input: ModelInput) -> Path:
    return write_json(Path(folder) / PROTOCOL_FILE, model_input.to_dict())


def read_model_input(folder: str | Path) -> ModelInput:
    """The model input of a run folder (``protocol.json``) or a bundle (``manifest.json``, validated by
    ``harlite.bundle``)."""
    folder = Path(folder)
    if (folder / PROTOCOL_FILE).is_file():
        try:
            return ModelInput.from_dict(read_json(folder / PROTOCOL_FILE))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BundleError(f"{folder / PROTOCOL_FILE} does not describe a model's input ({e}); train the "
                              "model again with 'harlite train'.") from None  # fmt: skip
    if (folder / MANIFEST).is_file():
        return ModelInput.from_dict(load_bundle(folder, verify=False).manifest)
    raise BundleError(
        f"{folder} has neither {PROTOCOL_FILE} nor {MANIFEST}, so the model's input is unknown: use a run "
        "folder of 'harlite train' or a bundle of 'harlite convert'."
    )


def save_model(model: Any, path: Path) -> None:
    """Save a Keras model atomically (Keras writes to a temporary name that is then renamed)."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    tmp.replace(path)


def load_model(path: str | Path) -> Any:
    """Load a harlite Keras model safely (``harlite.bundle.keras.load_keras``: the zip .keras format only, no code
    from the file), with a clear error for a missing file."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path} does not exist: train a model first with 'harlite train --out DIR'.")
    return load_keras(path)


def versions() -> dict[str, str]:
    """Versions of what built the model."""
    from importlib.metadata import version

    return {
        "harlite": __version__,
        "python": platform.python_version(),
        **{name: version(name) for name in ("tensorflow", "tf-keras", "tensorflow-model-optimization")},
    }

"""A tiny real bundle for tests: a small Conv1D+LSTM trained for a few epochs on real HAPT windows of
training subjects, then made into a bundle by ``harlite.convert`` (int8/float32/float16 .tflite with
calibration, manifest.json) exactly as ``harlite convert`` does.

``tiny_bundle`` (session fixture) is built once per session, also when several test modules import
it, and must be treated as read-only: ``copy_bundle`` it before changing anything.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from harlite.frontend import FrontEndSpec
from harlite.protocol import TRAIN_SUBJECTS
from harlite.windows import WindowSet, load_windows

TRAIN_WINDOWS = 1500
EPOCHS = 3
OPTIONS = {"conv": (8, 12), "units": 12}


@cache
def build_tiny_bundle(root: str) -> Path:
    """Train the tiny model into ``root/run`` and convert it into the bundle ``root/bundle``."""
    from harlite.convert import convert
    from harlite.manifest import write_json
    from harlite.models import build_model
    from harlite.tf import keras
    from harlite.train import save_model, seed_everything

    run, bundle = Path(root) / "run", Path(root) / "bundle"
    run.mkdir(parents=True)
    spec = FrontEndSpec()
    train = load_windows(spec=spec).of_subjects(TRAIN_SUBJECTS)
    train = train.take(np.sort(np.random.default_rng(0).choice(len(train), TRAIN_WINDOWS, replace=False)))
    mean, std = train.normalization()
    seed_everything(0)
    model = build_model("cnn_lstm", n_channels=len(spec.channels), **OPTIONS)
    model.compile(keras().optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit((train.X - mean) / std, train.y, epochs=EPOCHS, batch_size=32, verbose=0)
    save_model(model, run / "model.keras")
    write_json(run / "normalization.json",
               {"channels": list(spec.channels), "mean": mean, "std": std, "frontend": spec.to_dict()})  # fmt: skip
    convert(run, bundle, calibration=200, windows=train)
    return bundle


def bundle_windows(bundle: Path, n: int, cache: Path) -> WindowSet:
    """``n`` real windows of the test subjects, spread evenly, cut with the bundle's front end
    (HAPT read through the harlite cache folder ``cache``)."""
    from harlite.manifest import load_manifest
    from harlite.parity import select_windows

    spec = FrontEndSpec.from_dict(load_manifest(bundle)["frontend"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(cache))
        return select_windows(load_windows(spec=spec), "test", n)


def copy_bundle(bundle: Path, dest: Path) -> Path:
    """A writable copy of a bundle."""
    shutil.copytree(bundle, dest)
    return dest


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> Path:
    """The read-only tiny bundle (see the module docstring), built with the session's harlite cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(_session_cache))
        return build_tiny_bundle(str(tmp_path_factory.getbasetemp() / "tiny_bundle"))

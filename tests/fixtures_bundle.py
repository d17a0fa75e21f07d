"""A tiny real bundle for tests: a small Conv1D+LSTM trained for a few epochs on real HAPT windows of
training subjects, then made into a bundle by ``harlite.pipeline.convert`` (int8/float32/float16 .tflite with
calibration, manifest.json) exactly as ``harlite convert`` does.

``tiny_bundle`` (session fixture) is built once per session, also when several test modules import
it, and must be treated as read-only: ``copy_bundle`` it before changing anything.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from harlite.data.windows import Split, WindowSet, load_split

TRAIN_WINDOWS = 1500
EPOCHS = 3
OPTIONS = {"conv": (8, 12), "units": 12}


@cache
def build_tiny_bundle(root: str, model_name: str = "cnn_lstm", options: tuple = tuple(OPTIONS.items()),
                      n_windows: int = TRAIN_WINDOWS, epochs: int = EPOCHS, calibration: int = 200) -> Path:  # fmt: skip
    """Train a tiny model (``model_name`` with ``options``, ``n_windows`` real training windows) into
    ``root/run`` and convert it into the bundle ``root/bundle``."""
    from harlite.bundle.run_folder import ModelInput, save_model, write_model_input
    from harlite.pipeline.convert import convert
    from harlite.pipeline.models import build_model
    from harlite.pipeline.train import seed_everything
    from harlite.tf import keras

    run, bundle = Path(root) / "run", Path(root) / "bundle"
    run.mkdir(parents=True)
    split = load_split()
    train = split.pool.take(np.sort(np.random.default_rng(0).choice(len(split.pool), n_windows, replace=False)))
    mean, std = train.normalization()
    seed_everything(0)
    model = build_model(model_name, n_channels=len(split.protocol.frontend.channels), **dict(options))
    model.compile(keras().optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit((train.X - mean) / std, train.y, epochs=epochs, batch_size=32, verbose=0)
    save_model(model, run / "model.keras")
    write_model_input(run, ModelInput(split.protocol, mean, std, split.spec, split.info()))
    convert(run, bundle, calibration=calibration, split=replace(split, pool=train))
    return bundle


def thinned(split: Split, train: tuple[str, ...], val: tuple[str, ...], test: tuple[str, ...], every: int = 1) -> Split:
    """``split`` made small: the windows of these training, validation and test subjects, every ``every``-th."""

    def thin(windows: WindowSet, groups: tuple[str, ...]) -> WindowSet:
        windows = windows.of_groups(groups)
        keep = np.zeros(len(windows), bool)
        keep[::every] = True
        return windows.take(keep)

    pool = thin(split.pool, train + val)
    return replace(split, train=pool.of_groups(train), val=pool.of_groups(val), test=thin(split.test, test), pool=pool,
                   groups={"train": list(train), "val": list(val), "test": list(test)})  # fmt: skip


def bundle_split(bundle: Path, cache: Path) -> Split:
    """The bundle's own split, cut with its front end (HAPT read through the harlite cache folder ``cache``)."""
    from harlite.bundle.run_folder import read_model_input

    model_input = read_model_input(bundle)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(cache))
        return load_split(model_input.data, model_input.protocol)


def bundle_windows(bundle: Path, n: int, cache: Path) -> WindowSet:
    """``n`` real windows of the test subjects, spread evenly, cut with the bundle's front end."""
    from harlite.run.parity import select_windows

    return select_windows(bundle_split(bundle, cache), "test", n)


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

"""Shared fixtures: an isolated harlite cache and a tiny UCI HAR dataset (folder, zip, archive zip)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from harlite.data.uci_har import FOLDER, INNER_ZIP, SIGNALS

# The session-scoped tiny bundle (a real model trained on real windows) and its helpers.
pytest_plugins = ("fixtures_bundle", "fixtures_firmware")

# The tiny UCI HAR set: (split, labels 1-6, subjects); signal value = channel + 10 * window + t / 1000.
UCI_SPLITS = {"train": ([1, 2, 6, 4], [1, 1, 3, 3]), "test": ([5, 3, 1], [2, 4, 4])}


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("harlite-cache")


@pytest.fixture
def harlite_cache(_session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HARLITE_CACHE pointed at a folder shared by this test session (parsed HAPT stays warm)."""
    monkeypatch.setenv("HARLITE_CACHE", str(_session_cache))
    return _session_cache


def uci_signal(channel: int, windows: int) -> np.ndarray:
    """The (windows, 128) values the tiny set stores for one channel."""
    return channel + 10.0 * np.arange(windows)[:, None] + np.arange(128)[None, :] / 1000.0


@pytest.fixture(scope="session")
def uci_har_expected() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (X, y, subject) that loading the tiny UCI HAR set must give: train rows, then test rows."""
    X = np.concatenate([np.stack([uci_signal(c, len(y)) for c in range(9)], axis=-1) for y, _ in UCI_SPLITS.values()])
    y = np.array([label - 1 for labels, _ in UCI_SPLITS.values() for label in labels])
    subject = np.array([s for _, subjects in UCI_SPLITS.values() for s in subjects])
    return X.astype(np.float32), y, subject


@pytest.fixture(scope="session")
def uci_har_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An extracted 'UCI HAR Dataset' folder: 4 train and 3 test windows, in UCI's text layout."""
    root = tmp_path_factory.mktemp("uci") / FOLDER
    for split, (labels, subjects) in UCI_SPLITS.items():
        signals = root / split / "Inertial Signals"
        signals.mkdir(parents=True)
        np.savetxt(root / split / f"y_{split}.txt", labels, fmt="%d")
        np.savetxt(root / split / f"subject_{split}.txt", subjects, fmt="%d")
        for c, name in enumerate(SIGNALS):
            np.savetxt(signals / f"{name}_{split}.txt", uci_signal(c, len(labels)), fmt="%15.7e", delimiter=" ")
    (root / "README.txt").write_text("tiny UCI HAR for tests\n")
    return root


@pytest.fixture(scope="session")
def uci_har_zip(uci_har_folder: Path) -> Path:
    """'UCI HAR Dataset.zip' as UCI ships it: files under 'UCI HAR Dataset/', plus macOS litter."""
    path = uci_har_folder.parent / INNER_ZIP
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted(uci_har_folder.rglob("*")):
            if file.is_file():
                z.write(file, f"{FOLDER}/{file.relative_to(uci_har_folder)}")
        z.writestr(f"__MACOSX/{FOLDER}/train/._y_train.txt", b"\x00\x05\x16\x07")
    return path


@pytest.fixture(scope="session")
def uci_har_archive(uci_har_zip: Path) -> Path:
    """The UCI repository's archive: the dataset zip nested inside another zip."""
    path = uci_har_zip.parent / "human+activity+recognition+using+smartphones.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.write(uci_har_zip, INNER_ZIP)
        z.writestr("UCI HAR Dataset.names", "names\n")
    return path

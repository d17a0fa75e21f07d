"""The released bundle in models/: intact, within its targets, usable without training, and what the sketch ships."""

from __future__ import annotations

from pathlib import Path

import pytest

from harlite.bundle.loader import load_bundle
from harlite.codegen.sources import ARTIFACTS
from harlite.io.hashing import sha256_file
from harlite.run.parity import parity

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "models" / "cnn_lstm"
SKETCH = ROOT / "firmware" / "arduino" / "harlite_har"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return load_bundle(RELEASED).manifest


def test_every_artifact_matches_its_recorded_bytes_and_sha256(manifest: dict) -> None:
    for kind, entry in manifest["artifacts"].items():
        path = RELEASED / entry["file"]
        assert path.stat().st_size == entry["bytes"] and sha256_file(path) == entry["sha256"], kind


def test_release_meets_its_targets(manifest: dict) -> None:
    """The released bundle's targets on the test subjects: int8 >= 93.5% and within 0.5 points of float, <= 32 KiB."""
    metrics = manifest["metrics"]
    assert manifest["artifacts"]["int8"]["bytes"] <= 32 * 1024
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in manifest["ops"]
    assert metrics["int8"]["accuracy"] >= 0.935
    assert metrics["float"]["accuracy"] - metrics["int8"]["accuracy"] <= 0.005
    assert metrics["int8"]["accuracy"] in (metrics["ptq_int8"]["accuracy"], metrics["qat_int8"]["accuracy"])


def test_sketch_ships_the_released_generated_files(manifest: dict) -> None:
    for name in ARTIFACTS.values():
        assert (SKETCH / name).read_bytes() == (RELEASED / "tflm" / name).read_bytes(), (
            f"refresh it: harlite convert models/cnn_lstm --firmware {SKETCH.relative_to(ROOT)}"
        )


def test_released_bundle_passes_parity_without_training(harlite_cache: Path) -> None:
    report = parity(RELEASED, limit=300)
    assert report["passed"], report["checks"]
    assert report["pairs"]["tflm|litert-int8"]["agreement"] >= 0.995

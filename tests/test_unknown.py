"""The unknown decision (harlite.core.unknown, harlite.pipeline.unknown): integers against a float64
reference computed here, calibration to a rate, what it flags, the manifest, and the real bundle path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harlite.bundle.manifest import validate
from harlite.core.unknown import OTHER_LABEL, UnknownSpec, decide, distances, energies, log_p_table, window_features
from harlite.errors import BundleError, DataError
from harlite.pipeline.unknown import calibrate, fit_distance, union_thresholds

WINDOW, CHANNELS, UNITS, CLASSES = 32, 3, 6, 3


def clusters(n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Fake int8 model outputs: per class a cluster of hidden vectors and a constant window level."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    centers = np.array([[40, -30, 10, 0, 20, -10], [-40, 30, 0, 10, -20, 10], [0, 0, -40, 40, 0, 0]])
    hidden = np.clip(centers[y] + shift + rng.normal(0, 6, (n, UNITS)), -128, 127).astype(np.int8)
    level = np.array([[20, -10, 5], [-20, 10, 5], [0, 0, 30]])[y] + shift
    inputs = np.clip(level[:, None, :] + rng.normal(0, 8, (n, WINDOW, CHANNELS)), -128, 127).astype(np.int8)
    logits = np.clip(rng.normal(-20, 5, (n, CLASSES)), -128, 127).astype(np.int8)
    logits[np.arange(n), y] = np.clip(60 + rng.normal(0, 5, n) - shift, -128, 127).astype(np.int8)
    scores = np.full((n, CLASSES), -120, np.int8)
    scores[np.arange(n), y] = 100
    return {"inputs": inputs, "scores": scores, "hidden": hidden, "logits": logits, "y": y}


QUANT = {"hidden": {"scale": 1 / 128, "zero_point": 0}, "logits": {"scale": 0.05, "zero_point": -10}}


def test_integer_distance_follows_the_float_mahalanobis_distance() -> None:
    train = clusters(3000, 0)
    u = window_features(train["inputs"], train["hidden"], 0).astype(np.float64)
    spec = fit_distance(u.astype(np.int64), train["y"], CLASSES)
    probe = clusters(400, 1, shift=6.0)
    v = window_features(probe["inputs"], probe["hidden"], 0)
    # the reference, float64 with numpy's own inverse: standardized features, shared covariance, ridge 1e-3
    sigma = np.maximum(u.std(0), 1.0)
    x = (u - u.mean(0)) / sigma
    means = np.stack([x[train["y"] == c].mean(0) for c in range(CLASSES)])
    r = x - means[train["y"]]
    cov = r.T @ r / len(x)
    cov += 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov))
    p = np.linalg.inv(cov)
    xv = (v - u.mean(0)) / sigma
    reference = np.min([np.einsum("ni,ij,nj->n", xv - m, p, xv - m) for m in means], axis=0)
    got = distances(v, UnknownSpec(spec.center, spec.rows, spec.shifts, spec.means, 0, 0, 0, 0, 0)) / 2.0**16
    assert np.allclose(got, reference, rtol=0.03, atol=0.5)
    assert np.corrcoef(got, reference)[0, 1] > 0.999


def test_energy_is_minus_logsumexp_of_the_logits() -> None:
    rng = np.random.default_rng(2)
    logits = rng.integers(-100, 100, (200, 5)).astype(np.int8)
    scale, zero = 0.07, -3
    real = (logits.astype(np.float64) - zero) * scale
    probs = np.exp(real - real.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    scores = np.clip(np.round(probs * 256) - 128, -128, 127).astype(np.int8)  # the int8 softmax's grid
    got = energies(logits, scores, int(round(scale * 4096)), zero) / 4096.0
    reference = -np.log(np.exp(real).sum(1))
    assert np.abs(got - reference).max() < 0.03  # the probability's 1/256 step and the scale's rounding
    assert log_p_table()[255] == round(np.log(255 / 256) * 4096)


def test_calibration_rejects_the_rate_of_validation_and_flags_what_it_never_saw() -> None:
    unknown = calibrate(clusters(3000, 0), clusters(1000, 1), CLASSES, 0.02, QUANT)
    spec = UnknownSpec.from_manifest(unknown)
    val = clusters(1000, 1)
    flagged = decide(val["inputs"], val["scores"], val["hidden"], val["logits"], spec)[0]
    assert flagged.mean() <= 0.02 and unknown["rejected"] == flagged.mean() and unknown["calibrated_on"] == "validation"
    assert 0.003 < flagged.mean()  # the thresholds are not simply above everything
    test = clusters(1000, 3)
    assert decide(test["inputs"], test["scores"], test["hidden"], test["logits"], spec)[0].mean() < 0.05
    novel = clusters(300, 4, shift=35.0)  # another posture and other hidden states: what training never saw
    assert decide(novel["inputs"], novel["scores"], novel["hidden"], novel["logits"], spec)[0].mean() > 0.9


def test_union_thresholds_allow_at_most_the_rate() -> None:
    rng = np.random.default_rng(5)
    dist, energy = rng.integers(0, 10_000, 997), rng.integers(-500, 500, 997)
    for rate in (0.0, 0.01, 0.02, 0.1):
        td, te, flagged = union_thresholds(dist, energy, rate)
        assert np.mean((dist > td) | (energy > te)) == flagged <= rate
    assert union_thresholds(dist, energy, 0.1)[2] > 0.09


def test_the_other_class_is_always_unknown_and_left_out_of_the_fit() -> None:
    train, val = clusters(3000, 0), clusters(1000, 1)
    unknown = calibrate(train, val, CLASSES, 0.02, QUANT, other=2)
    spec = UnknownSpec.from_manifest(unknown)
    assert spec.other == 2 and unknown["windows"] == int((val["y"] != 2).sum())
    flagged = decide(val["inputs"], val["scores"], val["hidden"], val["logits"], spec)[0]
    assert flagged[val["y"] == 2].all() and flagged[val["y"] != 2].mean() <= 0.02


def test_too_few_windows_is_a_clear_error() -> None:
    few = clusters(10, 0)
    with pytest.raises(DataError, match="more windows than features"):
        calibrate(few, few, CLASSES, 0.02, QUANT)
    with pytest.raises(DataError, match="unknown-rate"):
        calibrate(clusters(3000, 0), clusters(100, 1), CLASSES, 1.5, QUANT)


def test_manifest_round_trip_and_a_damaged_matrix_is_refused(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    spec = UnknownSpec.from_manifest(manifest["unknown"])
    again = {**manifest["unknown"], **spec.to_manifest()}
    assert again == manifest["unknown"]
    validate(manifest, "manifest.json")
    bad = json.loads(json.dumps(manifest))
    bad["unknown"]["distance"]["rows"][3].pop()
    with pytest.raises(BundleError, match=r"unknown\.distance\.rows\[3\]"):
        validate(bad, "manifest.json")
    bad = json.loads(json.dumps(manifest))
    bad["unknown"]["distance"]["shifts"][0] = 0
    with pytest.raises(BundleError, match=r"unknown\.distance\.shifts\[0\]"):
        validate(bad, "manifest.json")


def test_every_runtime_decides_alike_on_real_windows(tiny_bundle: Path, harlite_cache: Path) -> None:
    from fixtures_bundle import bundle_windows

    from harlite.bundle.loader import load_bundle
    from harlite.run.runtimes import open_runtime

    bundle = load_bundle(tiny_bundle)
    spec = UnknownSpec.from_manifest(bundle.manifest["unknown"])
    windows = bundle_windows(tiny_bundle, 120, harlite_cache)
    decisions, features = {}, {}
    for kind in ("litert-int8", "tflm", "c", "keras"):
        features[kind] = open_runtime(bundle, kind).unknown_features(windows.X)
        decisions[kind] = decide(*features[kind], spec)
    for kind in ("tflm", "c"):  # the same int8 bits: the same decisions, distances and energies
        for a, b in zip(features[kind], features["litert-int8"]):
            assert np.array_equal(a, b)
        for a, b in zip(decisions[kind], decisions["litert-int8"]):
            assert np.array_equal(a, b)
    assert np.mean(decisions["keras"][0] == decisions["c"][0]) > 0.9  # float, quantized to the int8 grid


def test_other_label_in_a_dataset_json_trains_the_other_class(tmp_path: Path) -> None:
    from harlite.data.datasets import DatasetConfig

    (tmp_path / "dataset.json").write_text(json.dumps({"other": ["bus", "fidget"], "merge": {"jog": "run"}}))
    config = DatasetConfig.read(tmp_path)
    assert config.merge == {"jog": "run", "bus": OTHER_LABEL, "fidget": OTHER_LABEL}
    (tmp_path / "dataset.json").write_text(json.dumps({"other": "bus"}))
    with pytest.raises(DataError, match='"other" must be a list'):
        DatasetConfig.read(tmp_path)


def test_calibrate_command_writes_postprocess_and_sources(tiny_bundle: Path, tmp_path: Path, harlite_cache: Path) -> None:
    from click.testing import CliRunner

    from harlite.bundle.loader import load_bundle
    from harlite.cli import main as cli

    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    result = CliRunner().invoke(cli, ["calibrate", str(bundle), "--unknown-rate", "0.05"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = load_bundle(bundle).manifest  # verified: the C sources follow the new manifest
    assert manifest["unknown"]["rate"] == 0.05 and 0.03 < manifest["unknown"]["rejected"] <= 0.05
    post = manifest["postprocess"]
    assert post["validation"]["switches_per_min"] <= 1.1 * post["validation"]["true_switches_per_min"] or "no setting" in post["rule"]
    header = (bundle / "tflm" / "harlite_model_config.h").read_text()
    assert "#define HARLITE_UNKNOWN 1" in header and f"#define HARLITE_POSTPROCESS_DWELL {post['dwell']}" in header

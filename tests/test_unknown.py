"""The unknown decision (harlite.core.unknown, harlite.pipeline.unknown): integers against a float64
reference computed here, calibration to a rate, what it flags, the manifest, and the real bundle path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tools import compile_ok, run, tool

from harlite.board.toolchain import WARNINGS
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
    # the C engine gives TFLM's bits: the same decisions, distances and energies
    for a, b in [*zip(features["c"], features["tflm"]), *zip(decisions["c"], decisions["tflm"])]:
        assert np.array_equal(a, b)
    assert 0 < decisions["c"][0].sum() < len(windows)  # some windows unknown, not all
    # LiteRT's kernels differ from TFLM's by an LSB here and there; Keras is float on the int8 grid
    assert np.mean(decisions["litert-int8"][0] == decisions["tflm"][0]) > 0.95
    assert np.mean(decisions["keras"][0] == decisions["c"][0]) > 0.9


def test_other_label_in_a_dataset_json_trains_the_other_class(tmp_path: Path) -> None:
    from harlite.data.datasets import DatasetConfig

    (tmp_path / "dataset.json").write_text(json.dumps({"other": ["bus", "fidget"], "merge": {"jog": "run"}}))
    config = DatasetConfig.read(tmp_path)
    assert config.merge == {"jog": "run", "bus": OTHER_LABEL, "fidget": OTHER_LABEL}
    (tmp_path / "dataset.json").write_text(json.dumps({"other": "bus"}))
    with pytest.raises(DataError, match="other must be a list"):
        DatasetConfig.read(tmp_path)


def test_calibrate_command_writes_postprocess_and_sources(
    tiny_bundle: Path, tmp_path: Path, harlite_cache: Path
) -> None:
    from click.testing import CliRunner

    from harlite.bundle.loader import load_bundle
    from harlite.cli import main as cli

    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    result = CliRunner().invoke(cli, ["calibrate", str(bundle), "--unknown-rate", "0.05"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = load_bundle(bundle).manifest  # verified: the C sources follow the new manifest
    assert manifest["unknown"]["rate"] == 0.05 and 0.03 < manifest["unknown"]["rejected"] <= 0.05
    post = manifest["postprocess"]
    assert (
        post["validation"]["switches_per_min"] <= 1.1 * post["validation"]["true_switches_per_min"]
        or "no setting" in post["rule"]
    )
    header = (bundle / "tflm" / "harlite_model_config.h").read_text()
    assert "#define HARLITE_UNKNOWN 1" in header and f"#define HARLITE_POSTPROCESS_DWELL {post['dwell']}" in header

    # harlite.h's harlite_init_calibrated sets up what was chosen (the library as harlite export writes it)
    from harlite.board.firmware import write_library
    from harlite.core.smoothing import SmoothingSpec

    library = tmp_path / "library"
    sources = write_library(load_bundle(bundle), library)
    (library / "probe.c").write_text(PROBE)
    compile_ok(
        [tool("gcc"), "-std=c99", *WARNINGS, f"-I{library}", *sources, library / "probe.c", "-o", library / "probe"]
    )
    got = run([library / "probe"]).stdout.split()
    spec = SmoothingSpec.from_manifest(post)
    mode = {"none": 0, "majority": 1, "ema": 2}[spec.kind]
    assert got == ["1", str(mode), f"{spec.dwell}", f"{spec.hysteresis:.6f}", f"{spec.alpha:.6f}" if mode == 2 else
                   f"{spec.k}" if mode == 1 else "-", "unknown"]  # fmt: skip


PROBE = r"""#include <stdio.h>
#include "harlite.h"
int main(void) {
    static harlite_t h;
    const int ok = harlite_init_calibrated(&h);
    const harlite_smoother_t *sm = &h.pipeline.smoother;
    printf("%d %u %u %f ", ok, sm->mode, sm->dwell, sm->hysteresis);
    if (sm->mode == HARLITE_SMOOTH_EMA) printf("%f", sm->alpha); else if (sm->mode) printf("%u", sm->k); else printf("-");
    printf(" %s\n", harlite_label(HARLITE_UNKNOWN_CLASS));
    return 0;
}
"""


def test_three_outputs_keep_the_probabilities_bit_for_bit(tiny_bundle: Path, harlite_cache: Path) -> None:
    from fixtures_bundle import bundle_split

    from harlite.bundle.loader import load_bundle
    from harlite.core.frontend import quantize
    from harlite.pipeline.convert import calibration_windows, to_int8
    from harlite.tf import litert_interpreter

    bundle = load_bundle(tiny_bundle)
    m = bundle.manifest
    mean, std = (np.asarray(m["normalization"][k], np.float32) for k in ("mean", "std"))
    split = bundle_split(tiny_bundle, harlite_cache)
    calibration = calibration_windows(split.pool, mean, std, 100)
    one, three = (to_int8(bundle.keras_model(), calibration, features=f) for f in (False, True))
    q = quantize(split.test.X[:: max(1, len(split.test) // 60)], mean, std, m["quantization"]["input"]["scale"],
                 m["quantization"]["input"]["zero_point"])  # fmt: skip
    outputs = {}
    for name, model in (("one", one), ("three", three)):
        it = litert_interpreter(model, num_threads=1)
        details = it.get_output_details()
        outputs[name] = []
        for window in q:
            it.reset_all_variables()
            it.set_tensor(it.get_input_details()[0]["index"], window[None])
            it.invoke()
            outputs[name].append([it.get_tensor(d["index"])[0].copy() for d in details])
    shapes = [tuple(o.shape) for o in outputs["three"][0]]
    assert shapes == [(6,), (12,), (6,)]  # probabilities, the LSTM's 12 units, logits: harlite's order
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(outputs["one"], outputs["three"]))


def test_simulate_says_unknown_for_transitions_and_replays_turned(tiny_bundle: Path, harlite_cache: Path,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    from click.testing import CliRunner

    from harlite.cli import main
    from harlite.data.hapt import load_hapt
    from harlite.data.recordings import write_csv

    rec = load_hapt(["2"], transitions=True)[0]
    csv = write_csv(rec, tmp_path / "rec.csv")
    runner = CliRunner()
    done = runner.invoke(main, ["simulate", str(tiny_bundle), str(csv), "--runtime", "c", "--json", "--out",
                                str(tmp_path / "sim")], catch_exceptions=False)  # fmt: skip
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    unknown = summary["unknown"]
    assert unknown["foreign_windows"] > 5  # HAPT's transitions, labelled 'other': none of the activities
    assert unknown["foreign_unknown_rate"] > 3 * unknown["pure_unknown_rate"]
    rows = json.loads((tmp_path / "sim" / "timeline.json").read_text())["rows"]
    assert sum(r["pred_raw"] == "unknown" for r in rows) == unknown["unknown"] > 0
    assert summary["stream"]["changes"] > 5 and 0 < summary["stream"]["segment_f1"] <= 1
    assert summary["smoothing"] == "none"  # convert alone chooses no post-processing (calibrate and build do)
    turned = runner.invoke(main, ["simulate", str(tiny_bundle), str(csv), "--runtime", "litert", "--json", "--rotate",
                                  "x:180", "--no-unknown", "--smoothing", "none"], catch_exceptions=False)  # fmt: skip
    assert turned.exit_code == 0, turned.output
    turned = json.loads(turned.stdout)
    assert turned["rotation"] == "x:180" and turned["unknown"] is None
    assert turned["metrics"]["raw"]["accuracy"] != summary["metrics"]["raw"]["accuracy"]
    bad = runner.invoke(main, ["simulate", str(tiny_bundle), str(csv), "--rotate", "x:ninety"])
    assert bad.exit_code == 2 and "e.g. x:90" in bad.output

"""The simulator on real HAPT recordings with the shared tiny bundle (trained on real windows) in real
runtimes: stream = batch, the timeline, smoothing, golden vectors, the plot, bad input, and accuracy
against ``harlite evaluate`` and at 100 Hz against 50 Hz."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures_bundle import bundle_split, copy_bundle

from harlite.bundle.loader import load_bundle
from harlite.cli import main
from harlite.core.frontend import FrontEndSpec, cut_windows, features, quantize
from harlite.core.protocol import HAPT, UNLABELLED
from harlite.core.protocol import UCI_LABELS as LABELS
from harlite.core.smoothing import smooth
from harlite.data.hapt import load_hapt
from harlite.data.recordings import Recording, read_csv, write_csv
from harlite.data.windows import WindowSet, window_labels
from harlite.io.files import read_json, write_json
from harlite.run.runtimes import open_runtime
from harlite.run.simulate import SimulationResult, simulate
from harlite.run.timeline import dump_golden, plot_timeline, write_timeline


@pytest.fixture(scope="module")
def recording() -> Recording:
    """Four minutes of a real continuous recording of test subject 2, with its labels."""
    rec = load_hapt([2])[0]
    return replace(rec, samples=rec.samples[:12000], labels=rec.labels[:12000])


@pytest.fixture(scope="module")
def relabelled(recording: Recording) -> Recording:
    """The same samples with activities that change without a gap, and a few unlabelled samples."""
    labels = np.repeat(np.arange(6, dtype=np.int8), 2000)
    labels[5000:5100] = UNLABELLED
    return replace(recording, labels=labels, source="relabelled")


@pytest.fixture(scope="module")
def result(tiny_bundle, recording, relabelled) -> SimulationResult:
    return simulate(tiny_bundle, [recording, relabelled], runtime="tflm", smoothing="majority:3")


def _batch_inputs(bundle: Path, rec: Recording) -> np.ndarray:
    """The int8 windows of the batch path: features + cut_windows + quantize."""
    m = load_bundle(bundle).manifest
    spec, q = FrontEndSpec.from_dict(m["frontend"]), m["quantization"]["input"]
    windows = cut_windows(features(rec.samples, spec), spec)
    return quantize(windows, m["normalization"]["mean"], m["normalization"]["std"], q["scale"], q["zero_point"])


def _run(*args: str) -> object:
    return CliRunner().invoke(main, ["simulate", *map(str, args)])


def test_stream_int8_inputs_equal_the_batch_windows(tiny_bundle, recording, result) -> None:
    trace = result.traces[0]
    batch = _batch_inputs(tiny_bundle, recording)
    assert trace.inputs.shape == batch.shape == (186, 128, 9)
    np.testing.assert_array_equal(trace.inputs, batch)
    # The outputs are TFLM's for those inputs, and dequantize to the runtime's probabilities.
    tflm = open_runtime(tiny_bundle, "tflm")
    np.testing.assert_array_equal(trace.outputs[:30], np.array([tflm.invoke_int8(q) for q in batch[:30]]))
    np.testing.assert_array_equal(trace.probs, tflm.predict(cut_windows(features(recording.samples))))


def test_timeline_rows_times_labels_probabilities_and_smoothing(result, recording, relabelled, tmp_path) -> None:
    paths = write_timeline(result, tmp_path)
    assert [p.name for p in paths] == ["timeline.csv", "timeline.json"]
    with open(paths[0], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["recording", "start_s", "end_s", "pred_raw", "pred_smoothed", "label"] + [
        f"p_{name}" for name in LABELS
    ]
    assert len(rows) == 2 * 186 and rows[186]["recording"] == "relabelled"
    for k, row in enumerate(rows[:186]):
        assert float(row["start_s"]) == pytest.approx(k * 1.28)
        assert float(row["end_s"]) == pytest.approx(k * 1.28 + 2.56)
    for rec, part in ((recording, rows[:186]), (relabelled, rows[186:])):
        truth = window_labels(rec.labels, len(rec), HAPT.frontend)
        assert [r["label"] for r in part] == ["" if t == UNLABELLED else LABELS[t] for t in truth]
        probs = np.array([[float(r[f"p_{name}"]) for name in LABELS] for r in part])
        assert np.all(np.abs(probs.sum(axis=1) - 1) < 0.03)
        # the top class, or unknown (the bundle's unknown decision), which post-processing counts as a label
        unknown = np.array([r["pred_raw"] == "unknown" for r in part])
        decisions = np.where(unknown, len(LABELS), probs.argmax(axis=1))
        assert [r["pred_raw"] for r in part] == [(*LABELS, "unknown")[i] for i in decisions]
        assert [r["pred_smoothed"] for r in part] == [
            (*LABELS, "unknown")[i] for i in smooth(probs, "majority:3", decisions)
        ]
    # Not vacuous: the model tells activities apart and smoothing changes some predictions.
    assert len({r["pred_raw"] for r in rows[:186]}) >= 4
    assert any(r["pred_raw"] != r["pred_smoothed"] for r in rows)
    doc = json.loads(paths[1].read_text())
    assert doc["smoothing"] == "majority:3" and doc["runtime"] == "tflm" and len(doc["rows"]) == len(rows)
    assert doc["rows"][0]["label"] in (None, *LABELS) and doc["rows"][5]["start_s"] == pytest.approx(6.4)


def test_windows_straddling_a_change_or_unlabelled_samples_are_counted_apart(result, relabelled) -> None:
    counts = result.window_counts
    # relabelled: 5 activity changes every 2000 samples and one unlabelled stretch.
    straddling = sum(1 for s in result.traces[1].starts if len(set(relabelled.labels[s : s + 128])) > 1
                     and UNLABELLED not in relabelled.labels[s : s + 128])  # fmt: skip
    assert counts["straddling"] == straddling > 0 and counts["unlabelled"] > 0 and counts["no_labels"] == 0
    assert counts["total"] == counts["pure"] + counts["straddling"] + counts["unlabelled"] == 372
    for which in ("raw", "smoothed"):
        m = result.metrics[which]
        assert m["n"] == counts["pure"] and np.array(m["confusion"]).sum() == counts["pure"]
    pure = np.concatenate([tr.kind == "pure" for tr in result.traces])
    raw = np.concatenate([tr.probs.argmax(axis=1) for tr in result.traces])[pure]  # the top class, unknown or not
    truth = np.concatenate([tr.truth for tr in result.traces])[pure]
    assert result.metrics["raw"]["accuracy"] == pytest.approx((raw == truth).mean())
    latency = result.latency
    assert latency["windows"] == 372 and latency["invoke_ms"]["p99"] >= latency["invoke_ms"]["p50"] > 0


def test_golden_vectors_replay_to_the_same_tensors(tiny_bundle, recording, result, tmp_path) -> None:
    header = tiny_bundle / "tflm" / "harlite_model_config.h"  # written by convert, copied as is
    paths = dump_golden(result, tmp_path / "golden")
    expected = "raw_f32.bin input_int8.bin output_int8.bin golden.json harlite_model_config.h features_int8.bin"
    assert sorted(p.name for p in paths) == sorted(expected.split())
    golden = read_json(tmp_path / "golden" / "golden.json")
    n, m = len(recording), 186
    assert {k: golden[k] for k in ("samples", "windows", "window", "hop", "channels", "classes")} == {
        "samples": n, "windows": m, "window": 128, "hop": 64, "channels": 9, "classes": 6}  # fmt: skip
    assert golden["source"] == recording.source and len(golden["model_sha256"]) == 64
    raw = np.fromfile(tmp_path / "golden" / "raw_f32.bin", dtype="<f4").reshape(n, 6)
    inputs = np.fromfile(tmp_path / "golden" / "input_int8.bin", dtype=np.int8).reshape(m, 128, 9)
    outputs = np.fromfile(tmp_path / "golden" / "output_int8.bin", dtype=np.int8).reshape(m, 6)
    np.testing.assert_array_equal(raw, recording.samples)
    np.testing.assert_array_equal(inputs, _batch_inputs(tiny_bundle, Recording(raw, 50.0)))
    tflm = open_runtime(tiny_bundle, "tflm")
    np.testing.assert_array_equal(outputs[-10:], np.array([tflm.invoke_int8(q) for q in inputs[-10:]]))
    assert (tmp_path / "golden" / "harlite_model_config.h").read_text() == header.read_text()
    probs = (outputs.astype(np.float32) - result.bundle.manifest["quantization"]["output"]["zero_point"]) * np.float32(
        result.bundle.manifest["quantization"]["output"]["scale"])  # fmt: skip
    decisions = np.array(golden["decisions"])  # the top class, or 6: unknown
    assert np.array_equal(decisions[decisions < 6], probs.argmax(axis=1)[decisions < 6])
    for spec in ("none", "majority:3", "majority:4", "ema:0.5", "ema:0.3 dwell:2 hysteresis:0.1"):
        assert golden["smoothed"][spec] == smooth(probs, spec, decisions).tolist()
    assert golden["smoothed"]["ema:0.5"] != golden["smoothed"]["none"]
    with pytest.raises(Exception, match="exists; pass --force"):
        dump_golden(result, tmp_path / "golden")


def test_plot_is_a_png_of_the_recording(result, tmp_path) -> None:
    path = plot_timeline(result, tmp_path / "timeline.png", recording=1)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1000 and 400 < height < width


def test_cli_replays_csv_writes_everything_and_prints_json(tiny_bundle, recording, tmp_path) -> None:
    csv_path = write_csv(recording, tmp_path / "rec.csv.gz")
    headless = copy_bundle(tiny_bundle, tmp_path / "headless")
    (headless / "tflm" / "harlite_model_config.h").unlink()
    res = _run(headless, csv_path, "--out", tmp_path / "out", "--dump-golden", tmp_path / "g", "--json")
    # A bundle without its generated header is incomplete.
    assert res.exit_code == 2 and "harlite_model_config.h is missing" in res.output
    res = _run(tiny_bundle, csv_path, "--smoothing", "ema:0.4", "--out", tmp_path / "out",
               "--plot", tmp_path / "p.png", "--json", "--force")  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["smoothing"] == "ema:0.4" and summary["windows"]["total"] == 186
    assert summary["latency"]["windows_per_s"] > 0
    assert summary["metrics"]["smoothed"]["n"] == summary["windows"]["pure"] > 0
    assert {Path(f).name for f in summary["files"]} == {"timeline.csv", "timeline.json", "p.png"}
    again = _run(tiny_bundle, csv_path, "--out", tmp_path / "out")
    assert again.exit_code == 2 and "exists; pass --force" in again.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["{rec}.txt"], "unknown recording format"),
        (["--smoothing", "median:3"], "bad smoothing 'median:3'"),
        (["--subjects", ","], "give subject names separated by commas"),
        (["--subjects", "2", "--split", "test"], "give --subjects or --split, not both"),
        (["--dataset", "hapt", "--subjects", "31"], "unknown HAPT subject 31"),
        (["--dataset", "{tmp}/nowhere"], "is not a folder"),
        (["--runtime", "litert", "--dump-golden", "{tmp}/g"], "--dump-golden records the board's outputs"),
        ([], "nothing to replay"),
    ],
)
def test_cli_bad_input_is_a_clear_error(tiny_bundle, tmp_path, args, message) -> None:
    (tmp_path / "rec.txt").write_text("time_s,acc_x\n0,1\n")
    args = [a.format(rec=tmp_path / "rec", tmp=tmp_path) for a in args]
    res = _run(tiny_bundle, *args)
    assert res.exit_code in (1, 2) and message in res.output and "Traceback" not in res.output


def test_cli_bundle_without_a_manifest_field(tiny_bundle, tmp_path) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path / "bundle")
    manifest = read_json(bundle / "manifest.json")
    del manifest["quantization"]["output"]["zero_point"]
    write_json(bundle / "manifest.json", manifest)
    res = _run(bundle, "--dataset", "hapt", "--subjects", "2")
    assert res.exit_code == 2 and "field quantization.output.zero_point is missing" in res.output


def test_cli_short_recording_warns_and_gives_no_windows(tiny_bundle, recording, tmp_path) -> None:
    short = write_csv(replace(recording, samples=recording.samples[:100], labels=recording.labels[:100]),
                      tmp_path / "short.csv")  # fmt: skip
    res = _run(tiny_bundle, short, "--plot", tmp_path / "p.png", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "shorter than one window" in res.output and "0 windows" in res.output
    assert "no recording gave a window, so there are no plot" in res.output
    assert (tmp_path / "out" / "timeline.csv").read_text().count("\n") == 1  # the header only
    assert not (tmp_path / "p.png").exists()


def test_replay_matches_evaluate_on_the_same_windows(tiny_bundle, harlite_cache) -> None:
    from harlite.core.frontend import cut_windows, features
    from harlite.pipeline.evaluate import evaluate

    recordings = load_hapt([2, 4])
    cut = [(cut_windows(features(r.samples, HAPT.frontend), HAPT.frontend), window_labels(r.labels, len(r), HAPT.frontend),
            r.subject) for r in recordings]  # fmt: skip
    X, y, group = (np.concatenate(p) for p in zip(*[(X[y >= 0], y[y >= 0], np.full((y >= 0).sum(), s)) for X, y, s in cut]))
    split = bundle_split(tiny_bundle, harlite_cache)
    split = replace(split, test=WindowSet(X, y, group))
    evaluated = evaluate(tiny_bundle / "model_int8.tflite", split=split)["results"]["model_int8"]
    litert = simulate(tiny_bundle, recordings, runtime="litert").metrics["raw"]
    tflm = simulate(tiny_bundle, recordings, runtime="tflm").metrics["raw"]
    assert evaluated["accuracy"] > 0.5 and evaluated["n"] > 500  # the model has learnt something
    # LiteRT on the streamed windows is harlite evaluate exactly; TFLM is within 0.5 points of it.
    assert litert["n"] == tflm["n"] == evaluated["n"] and litert["confusion"] == evaluated["confusion"]
    assert abs(tflm["accuracy"] - evaluated["accuracy"]) <= 0.005


def test_recording_at_100_hz_scores_like_the_50_hz_original(tiny_bundle, tmp_path) -> None:
    original = load_hapt([2])[0]
    fast = write_csv(original.resampled(100.0), tmp_path / "fast.csv")
    back = read_csv(fast, 50.0).with_classes(LABELS)
    assert back.rate == 50.0 and abs(len(back) - len(original)) <= 2
    a, b = (simulate(tiny_bundle, [rec], runtime="tflm") for rec in (original, back))
    assert a.window_counts["pure"] > 100
    assert abs(a.metrics["raw"]["accuracy"] - b.metrics["raw"]["accuracy"]) <= 0.01
    n = min(len(a.traces[0].raw), len(b.traces[0].raw))
    assert (a.traces[0].raw[:n] == b.traces[0].raw[:n]).mean() > 0.95


def test_two_processes_replay_the_19_test_recordings_exactly_as_one(tiny_bundle, harlite_cache, tmp_path) -> None:
    from harlite.core.protocol import UCI_TEST_SUBJECTS
    from harlite.pipeline.evaluate import evaluate

    recordings = load_hapt(UCI_TEST_SUBJECTS)
    assert len(recordings) == 19
    serial = simulate(tiny_bundle, recordings, runtime="tflm", smoothing="majority:3")
    parallel = simulate(tiny_bundle, recordings, runtime="tflm", smoothing="majority:3", jobs=2)
    assert len(serial.rows()) > 4000
    assert parallel.rows() == serial.rows() and parallel.metrics == serial.metrics
    for one, two in zip(serial.traces, parallel.traces):
        np.testing.assert_array_equal(one.outputs, two.outputs)
        np.testing.assert_array_equal(one.inputs, two.inputs)
    write_timeline(serial, tmp_path / "one")
    write_timeline(parallel, tmp_path / "two")
    assert (tmp_path / "one" / "timeline.csv").read_bytes() == (tmp_path / "two" / "timeline.csv").read_bytes()
    # evaluate's windows over two processes, each reading its own part: the same scores
    model = tiny_bundle / "model_int8.tflite"
    assert evaluate(model, jobs=2)["results"] == evaluate(model)["results"]


def test_cli_replays_a_phone_recording_without_labels_or_a_one_label_dataset(tiny_bundle, recording, tmp_path) -> None:
    """Issue 22: a single unlabelled file in m/s^2 with a nanosecond clock replays with --units and
    --time-unit and reports its predictions without accuracy, the same as the file in g; a dataset of one
    label replays and is scored on that label; nothing is written into a dataset replayed."""
    piece = replace(recording, samples=recording.samples[:3000], labels=None)
    in_g = write_csv(piece, tmp_path / "g.csv")
    lines = in_g.read_text().splitlines()
    phone = tmp_path / "phone.csv"
    rows = [f"{1718030736872695300 + 20_000_000 * i},{v[0] * 9.80665!r},{v[1] * 9.80665!r},{v[2] * 9.80665!r},"
            f"{','.join(line.split(',')[4:7])}" for i, (line, v) in enumerate(zip(lines[1:], piece.samples.tolist()))]  # fmt: skip
    phone.write_text("\n".join(["time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z", *rows]) + "\n")
    res = _run(tiny_bundle, phone, "--runtime", "litert")
    assert res.exit_code == 2 and "looks like nanoseconds" in res.output
    res = _run(tiny_bundle, phone, "--runtime", "litert", "--units", "acc=m/s^2", "--time-unit", "ns", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    reference = json.loads(_run(tiny_bundle, in_g, "--runtime", "litert", "--json").stdout)
    assert summary["metrics"] is None and summary["windows"]["no_labels"] == summary["windows"]["total"] > 40
    assert summary["predictions"] == reference["predictions"]
    assert "predicted (windows)" in _run(tiny_bundle, in_g, "--runtime", "litert").output
    labelled = replace(
        recording, samples=recording.samples[:3000], labels=np.where(recording.labels[:3000] == 4, 4, -1)
    )
    write_csv(labelled, tmp_path / "one" / "ann" / "standing.csv")
    res = _run(tiny_bundle, "--dataset", tmp_path / "one", "--runtime", "litert")
    assert res.exit_code == 0 and "measured on STANDING" in res.output, res.output
    res = _run(tiny_bundle, "--dataset", tmp_path / "one", "--runtime", "litert", "--out", tmp_path / "one" / "sim")
    assert res.exit_code == 2 and "lies inside the dataset" in res.output and not (tmp_path / "one" / "sim").exists()


def test_a_replay_worker_that_dies_is_one_clear_error() -> None:
    """--jobs: a worker process killed part way (as the kernel's OOM killer would) is a HarliteError naming the
    cause, not a traceback from the process pool."""
    import os
    import signal

    from harlite.errors import HarliteError
    from harlite.run.processes import in_processes

    with pytest.raises(HarliteError, match="worker process of --jobs 2 ended without finishing"):
        in_processes(os.kill, [signal.SIGKILL] * 2, 2, os.getpid)  # each worker kills itself

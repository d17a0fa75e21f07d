"""Own data (issue 12): a folder of CSV recordings with labels, sensors and a rate of its own, from
``harlite data info`` through the split to ``harlite build --data`` and a replay of its bundle.

The recordings are synthetic but physical: a board at a random tilt per subject (gravity), and per
activity a movement of its own ("wave": 1.5 Hz swings, "brush": 4 Hz jitter, "rest": stillness), with
sensor noise; every subject is a folder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harlite.cli import main
from harlite.core.frontend import ACC, ACC_CHANNELS, IMU6
from harlite.data.datasets import load_dataset
from harlite.data.recordings import Recording, write_csv
from harlite.data.windows import DataSpec, load_split
from harlite.errors import DataError

LABELS = ("wave", "brush", "rest")  # "rest" sorts last: the protocol's labels are sorted
MOVES = {"wave": (1.5, 0.6, 1.5), "brush": (4.0, 0.25, 3.0), "rest": (0.0, 0.0, 0.0)}  # Hz, g, rad/s


def synthetic(subject: int, rate: float, seconds_per_label: float = 24.0, gyro: bool = True,
              labels: tuple[str, ...] = LABELS, seed: int = 0) -> Recording:  # fmt: skip
    """One recording of ``labels`` in turn, ``seconds_per_label`` each, with a 2 s unlabelled pause between."""
    rng = np.random.default_rng(1000 * seed + subject)
    tilt = rng.normal(0, 0.4, 3)
    gravity = np.array([np.sin(tilt[0]), np.sin(tilt[1]), np.cos(tilt[0]) * np.cos(tilt[1])])
    parts, names = [], []
    for name in labels:
        for pause, label in ((2.0, ""), (seconds_per_label, name)):
            n = int(pause * rate)
            t = np.arange(n) / rate
            freq, acc_amp, gyro_amp = MOVES[label] if label else (0.0, 0.0, 0.0)
            phase = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3))
            acc = gravity + acc_amp * phase[:, None] * np.array([1.0, 0.3, -0.2]) + rng.normal(0, 0.02, (n, 3))
            rot = gyro_amp * np.cos(2 * np.pi * freq * t)[:, None] * np.array([0.2, 1.0, 0.1]) + rng.normal(
                0, 0.01, (n, 3)
            )
            parts.append(np.hstack([acc, rot]) if gyro else acc)
            names += [label] * n
    samples = np.concatenate(parts).astype(np.float32)
    classes = tuple(dict.fromkeys(n for n in names if n))
    index = {name: i for i, name in enumerate(classes)}
    codes = np.array([index.get(n, -1) for n in names], np.int16)
    return Recording(samples, rate, codes, classes, IMU6 if gyro else ACC, str(subject), f"synthetic:{subject}")


def pure_windows(seconds_per_label: float = 24.0, n_labels: int = 3, rate: float = 50.0) -> list[int]:
    """Windows (128 samples, hop 64) lying wholly inside each labelled stretch of ``synthetic``, counted
    from the layout alone."""
    step = int(2.0 * rate) + int(seconds_per_label * rate)
    starts = np.arange(0, n_labels * step - 128 + 1, 64)
    return [
        int(((starts >= k * step + int(2.0 * rate)) & (starts + 128 <= (k + 1) * step)).sum()) for k in range(n_labels)
    ]


def make_dataset(root: Path, subjects: range, rate: float, gyro: bool = True, **kwargs) -> Path:
    """``root/person<k>/session.csv`` for each subject."""
    for s in subjects:
        write_csv(synthetic(s, rate, gyro=gyro, **kwargs), root / f"person{s}" / "session.csv")
    return root


def cli(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_data_info_describes_an_own_dataset_and_its_split(tmp_path: Path, harlite_cache: Path) -> None:
    data = make_dataset(tmp_path / "data", range(1, 8), rate=100.0, gyro=False)
    result = cli("data", "info", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["labels"] == sorted(LABELS) and info["sensors"] == list(ACC) and info["rates_hz"] == [100.0]
    assert info["recordings"] == 7 and info["subjects"] == [f"person{s}" for s in range(1, 8)]
    assert info["protocol"]["rate_hz"] == 50.0 and info["protocol"]["channels"] == list(ACC_CHANNELS)
    groups = info["groups"]
    assert info["split"] == "subject" and len(groups["test"]) == 1 and len(groups["val"]) == 1  # 20% and 15% of 7
    assert sorted(groups["train"] + groups["val"] + groups["test"]) == info["subjects"]
    wave, brush, rest = pure_windows()  # in the order synthetic records them
    assert info["windows"]["test"] == {"brush": brush, "rest": rest, "wave": wave, "total": wave + brush + rest}
    assert info["windows"]["train"]["total"] == 5 * (wave + brush + rest) and info["warnings"] == []
    table = cli("data", "info", "--data", data)
    assert table.exit_code == 0 and "split by subject" in table.stdout and "brush" in table.stdout


def test_the_split_falls_back_to_recordings_then_to_time(tmp_path: Path, harlite_cache: Path) -> None:
    two = make_dataset(tmp_path / "two", range(1, 3), rate=50.0)
    for s in (1, 2):  # a second recording per subject: four recordings of two subjects
        write_csv(synthetic(s, 50.0, seed=1), two / f"person{s}" / "again.csv")
    split = load_split(DataSpec(data=str(two)))
    assert split.kind == "recording" and len(split.groups["test"]) == 1 and "person" in split.groups["test"][0]
    assert any("fewer than 3 subjects" in w for w in split.warnings)
    one = make_dataset(tmp_path / "one", range(1, 2), rate=50.0, seconds_per_label=60.0)
    split = load_split(DataSpec(data=str(one)))
    assert split.kind == "time" and split.groups["test"] == ["person1/session.csv#test"]
    recording = split.test_recordings()[0]
    assert recording.source.endswith("#test") and len(recording) == 3 * 62 * 50 // 5
    # no window is in two parts: windows straddling a boundary are in none
    assert len(split.train) + len(split.val) == len(split.pool) and len(split.train) > 4 * len(split.val) > 0
    assert {g.rsplit("#", 1)[1] for part in (split.train, split.val, split.test) for g in part.group} == {
        "train",
        "val",
        "test",
    }
    chosen = load_split(DataSpec(data=str(two), test_subjects=("person2",)))
    assert chosen.kind == "subject" and chosen.groups["test"] == ["person2"]


def test_labels_from_dataset_json_merge_and_ignore(tmp_path: Path, harlite_cache: Path) -> None:
    data = make_dataset(tmp_path / "data", range(1, 5), rate=50.0)
    (data / "dataset.json").write_text(json.dumps({"labels": ["rest", "moving"], "merge": {"wave": "moving"},
                                                   "ignore": ["brush"]}))  # fmt: skip
    dataset = load_dataset(data)
    assert dataset.labels == ("rest", "moving")
    split = load_split(DataSpec(data=str(data)))
    wave, _, rest = pure_windows()
    counts = {
        name: n + split.test.class_counts(dataset.labels)[name]
        for name, n in split.pool.class_counts(dataset.labels).items()
    }
    assert counts == {"rest": 4 * rest, "moving": 4 * wave}  # wave became moving; brush counts as unlabelled


def test_units_from_dataset_json(tmp_path: Path, harlite_cache: Path) -> None:
    rec = synthetic(1, 50.0)
    si = Recording(rec.samples * np.array([9.80665] * 3 + [57.29578] * 3, np.float32), rec.rate, rec.labels,
                   rec.classes, rec.raw_channels, rec.subject, rec.source)  # fmt: skip
    write_csv(si, tmp_path / "data" / "p1" / "s.csv")
    with pytest.raises(DataError, match=r"looks like m/s\^2"):
        load_dataset(tmp_path / "data")
    (tmp_path / "data" / "dataset.json").write_text('{"units": {"acc": "m/s^2", "gyro": "deg/s"}}')
    np.testing.assert_allclose(load_dataset(tmp_path / "data").recordings[0].samples, rec.samples, atol=1e-5)


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    """(harlite data info arguments, the message) for each bad input issue 12 names."""
    empty = tmp / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no recordings here")
    single = make_dataset(tmp / "single", range(1, 4), 50.0, labels=("wave",))
    train = make_dataset(tmp / "train", range(1, 4), 50.0, labels=("wave", "rest"))
    test = make_dataset(tmp / "test", range(7, 8), 50.0, labels=("wave", "brush"))
    mixed = make_dataset(tmp / "mixed", range(1, 3), 50.0)
    write_csv(synthetic(3, 50.0, gyro=False), mixed / "person3" / "session.csv")
    for s in range(1, 4):  # 2 s of wave and rest each: shorter than a window of 2.56 s
        rec = synthetic(s, 50.0, seconds_per_label=1.0, labels=("wave", "rest"))
        keep = rec.labels >= 0
        write_csv(Recording(rec.samples[keep], rec.rate, rec.labels[keep], rec.classes, rec.raw_channels),
                  tmp / "short" / f"p{s}" / "s.csv")  # fmt: skip
    short = tmp / "short"
    units = make_dataset(tmp / "units", range(1, 3), 50.0)
    (units / "dataset.json").write_text('{"units": {"acc": "furlongs"}}')
    quote = make_dataset(tmp / "quote", range(1, 3), 50.0)
    (quote / "dataset.json").write_text(json.dumps({"merge": {"wave": 'wave"); system("rm'}}))
    newline = tmp / "newline"
    write_csv(synthetic(1, 50.0), newline / "p1" / "s.csv")
    text = (newline / "p1" / "s.csv").read_text().replace(",wave\n", ",wa\\nve\n")  # a backslash in a label
    (newline / "p1" / "s.csv").write_text(text)
    return [
        (["--data", empty], "holds no .csv or .csv.gz recording"),
        (["--data", single], "only 1 label (wave)"),
        (["--data", train, "--test-data", test], "has label brush, which the training data lacks"),
        (["--data", mixed], "recordings differ in their sensors"),
        (["--data", short], "every recording is shorter than one window"),
        (["--data", units], "units.acc must be one of 'g', 'm/s^2', got 'furlongs'"),
        (["--data", quote], "cannot be used: labels are at most 31 bytes of text without control characters"),
        (["--data", newline], "cannot be used"),
        (["--data", train, "--test-subjects", "nobody"], "test subject nobody is not in"),
        (["--data", train, "--window", "0.001s"], "less than one sample"),
    ]


def test_each_bad_input_is_one_clear_line(tmp_path: Path, harlite_cache: Path) -> None:
    for args, message in _bad_inputs(tmp_path):
        result = cli("data", "info", *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert "Traceback" not in result.output and len(errors) == 1 and message in errors[0], result.output


@pytest.mark.slow
def test_build_on_own_data_then_replay_a_test_recording(tmp_path: Path, harlite_cache: Path) -> None:
    """The evaluation's exact commands: ``harlite build --data TRAIN --test-data TEST --out OUT`` (quick
    here), then ``harlite simulate BUNDLE REC.csv --runtime tflm --smoothing none --out DIR``; the manifest,
    the C header and the timeline speak the dataset's labels, and the C engine replays it the same."""
    train = make_dataset(tmp_path / "train", range(1, 6), rate=100.0)  # resampled to 50 Hz
    test = make_dataset(tmp_path / "test", range(6, 8), rate=100.0, seed=1)
    out = tmp_path / "out"
    built = cli("build", "--data", train, "--test-data", test, "--out", out, "--quick", "--json")
    assert built.exit_code == 0, built.output
    results = json.loads(built.stdout)
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["labels"] == sorted(LABELS) and manifest["rate_hz"] == 50.0
    assert [c["name"] for c in manifest["raw_channels"]] == list(IMU6) and manifest["dataset"]["test_data"] == str(test)
    assert results["data"]["split"] == "subject" and results["parity"]["passed"]
    header = (out / "bundle" / "tflm" / "harlite_model_config.h").read_text()
    assert '#define HARLITE_LABELS { "brush", "rest", "wave" }' in header and "#define HARLITE_NUM_RAW 6" in header
    report = (out / "report.md").read_text()
    assert "labels brush, rest, wave" in report and "| brush |" in report and "test split from" in report
    timelines = {}
    for runtime in ("tflm", "c"):
        sim = cli("simulate", out / "bundle", test / "person6" / "session.csv", "--runtime", runtime,
                  "--smoothing", "none", "--out", tmp_path / runtime)  # fmt: skip
        assert sim.exit_code == 0, sim.output
        with open(tmp_path / runtime / "timeline.csv", newline="") as f:
            timelines[runtime] = list(csv.DictReader(f))
    rows = timelines["tflm"]
    assert {r["pred_raw"] for r in rows} <= {*LABELS, "unknown"} and {r["label"] for r in rows} == set(LABELS) | {""}
    assert [r["pred_raw"] for r in rows] == [r["pred_raw"] for r in timelines["c"]]
    # Two epochs (26 steps) fit the training windows, but batch norm's moving statistics are still young:
    # test accuracy is a coin toss between seeds (0.34 to 1.0 over seeds 0-4 here), so it is not asserted.
    history = json.loads((out / "train" / "history.json").read_text())
    assert history[-1]["accuracy"] > 0.9 and results["train"]["test"]["float"]["labels"] == sorted(LABELS)

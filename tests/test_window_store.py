"""The window store and the tf.data feed: windows cut once per recording into shards on disk, read back
exactly as the front end cuts them; normalization and class counts from the shards' sums; the streamed
feed giving every training window once per epoch, each worker its own shards, the same batches for the
same seed; the in-memory limit deciding how training reads its windows."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from harlite.core.frontend import cut_windows, features
from harlite.core.protocol import UNLABELLED
from harlite.data import windows as windows_module
from harlite.data.datasets import DatasetConfig
from harlite.data.hapt import export_hapt
from harlite.data.recordings import read_csv
from harlite.data.shards import ShardedWindows, window_labels
from harlite.data.windows import DataSpec, load_split

SUBJECTS = ("1", "2", "3", "4", "5")
SPEC = DataSpec(test_subjects=("2",), val_subjects=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five HAPT subjects as a dataset folder of CSV recordings."""
    root = tmp_path_factory.mktemp("data")
    cache = tmp_path_factory.mktemp("hapt-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(cache))
        export_hapt(SUBJECTS, root, as_dataset=True)
    return root


def _spec(folder: Path) -> DataSpec:
    return DataSpec(data=str(folder), test_subjects=SPEC.test_subjects, val_subjects=SPEC.val_subjects)


def test_the_store_holds_the_front_ends_windows_and_their_statistics(folder, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path / "cache"))
    split = load_split(_spec(folder))
    assert "windowing 10 recordings" in capsys.readouterr().err
    assert isinstance(split.train, ShardedWindows) and split.kind == "subject"
    # The windows of subject 2 (the test split), cut here with the front end, one recording at a time.
    expected_X, expected_y = [], []
    for path in sorted((folder / "2").glob("*.csv")):
        rec = read_csv(path, 50.0)
        rec = rec.with_classes(tuple(sorted(set(rec.classes))))
        X = cut_windows(features(rec.samples, split.protocol.frontend), split.protocol.frontend)
        y = window_labels(rec.labels, len(rec), split.protocol.frontend)
        expected_X.append(X[y != UNLABELLED])
        expected_y.append(np.array([split.protocol.labels.index(rec.classes[i]) for i in y[y != UNLABELLED]]))
    assert np.array_equal(split.test.X, np.concatenate(expected_X))
    assert np.array_equal(split.test.y, np.concatenate(expected_y))
    # Normalization and counts come from the shards' sums and equal those of the windows in memory.
    mean, std = split.train.normalization()
    in_memory = split.train.take(np.ones(len(split.train), bool))
    assert np.allclose(mean, in_memory.normalization()[0], rtol=0, atol=1e-6)
    assert np.allclose(std, in_memory.normalization()[1], rtol=1e-6)
    assert split.train.class_counts(split.protocol.labels) == in_memory.class_counts(split.protocol.labels)
    # Reading windows by index, in batches and in pieces gives the same windows.
    pick = np.array([0, 5, len(split.train) - 1])
    assert np.array_equal(split.train.rows(pick), in_memory.X[pick])
    assert np.array_equal(np.concatenate([X for X, _ in split.train.batches(100)]), in_memory.X)
    assert np.array_equal(np.concatenate([p.y for p in split.train.pieces(3)]), in_memory.y)


def test_each_recording_is_windowed_once_and_a_new_one_alone(folder, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path / "cache"))
    data = shutil.copytree(folder, tmp_path / "data")
    first = load_split(_spec(data))
    capsys.readouterr()
    again = load_split(_spec(data))
    assert "windowing" not in capsys.readouterr().err  # everything came from the store
    assert np.array_equal(again.pool.y, first.pool.y)
    extra = data / "6"
    extra.mkdir()
    shutil.copy(next((data / "1").glob("*.csv")), extra / "copy.csv")
    grown = load_split(_spec(data))
    assert "windowing 1 recording " in capsys.readouterr().err
    assert len(grown.pool) > len(first.pool)


def test_a_dataset_json_merge_recuts_with_the_merged_labels(folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path / "cache"))
    data = shutil.copytree(folder, tmp_path / "data")
    (data / "dataset.json").write_text('{"merge": {"WALKING_UPSTAIRS": "STAIRS", "WALKING_DOWNSTAIRS": "STAIRS"}}')
    split = load_split(_spec(data))
    assert DatasetConfig.read(data).merge and "STAIRS" in split.protocol.labels
    plain = load_split(_spec(folder))
    # Windows across an upstairs/downstairs change are pure once merged: at least as many windows.
    assert len(split.pool) + len(split.test) >= len(plain.pool) + len(plain.test)


def test_streamed_feed_gives_every_window_once_and_each_worker_its_own_shards(folder, tmp_path, monkeypatch) -> None:
    from harlite.pipeline.feed import Feed, training_dataset

    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path / "cache"))
    train = load_split(_spec(folder)).train
    raw = lambda X, seed: X  # noqa: E731  (no augmentation: the windows themselves)
    feed = Feed(seed=3, epochs=2, batch=32, prepare=raw, weights=np.ones(6, np.float32), stream=True)

    def epochs(dataset: object) -> list[np.ndarray]:
        batches = [(X.numpy(), y.numpy()) for X, y, _ in dataset]
        steps = feed.steps(len(train))
        return [np.concatenate([b[0] for b in batches[e * steps : (e + 1) * steps]]) for e in range(2)]

    one = epochs(training_dataset(train, feed, 32))
    key = lambda X: np.sort(X.reshape(len(X), -1)[:, :8], axis=0)  # noqa: E731
    for epoch in one:  # every training window exactly once per epoch, in another order each epoch
        assert len(epoch) == len(train) and np.array_equal(key(epoch), key(train.X))
    assert not np.array_equal(one[0], one[1])
    assert all(np.array_equal(a, b) for a, b in zip(one, epochs(training_dataset(train, feed, 32))))  # same seed
    # Two workers: every worker the same number of batches, from its own shards only.
    halves = [epochs(training_dataset(train, feed, 16, worker, 2))[0] for worker in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == 16 * feed.steps(len(train))
    firsts = [{tuple(w[0, :3]) for w in half} for half in halves]
    assert not firsts[0] & firsts[1]


def test_a_split_larger_than_the_limit_streams_and_says_so(folder, tmp_path, monkeypatch) -> None:
    from harlite.pipeline.train import TrainConfig, train

    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(windows_module, "IN_MEMORY_BYTES", 1 << 20)
    split = load_split(_spec(folder))
    assert not split.in_memory
    tiny = TrainConfig(epochs=1, batch_size=64, options={"conv": (4,), "units": 4})
    metrics = train(tmp_path / "run", tiny, split=split)
    assert metrics["input"]["mode"] == "streamed" and metrics["input"]["train_shards"] == len(split.train.shards)
    assert not (tmp_path / "run" / "backup").exists()  # finished: the checkpoint is gone
    again = train(tmp_path / "again", tiny, split=split)
    assert again["test"]["float"]["confusion"] == metrics["test"]["float"]["confusion"]
    assert os.path.getsize(tmp_path / "run" / "model.keras") > 0


def test_a_changed_column_mapping_or_file_is_windowed_again(folder, tmp_path, monkeypatch, capsys) -> None:
    """The store's key is the content and how it is read: a mapping that negates an axis, or an edit that keeps
    a file's size and modification time, never reuses the windows cut before."""
    from harlite.data.sources import stored_folder

    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    for subject in ("1", "3"):
        shutil.copytree(folder / subject, data / subject)
    frontend = lambda raw, gravity: DataSpec().frontend(raw, gravity)  # noqa: E731

    def first_windows() -> np.ndarray:
        stored = stored_folder(data, frontend)
        return stored.recordings[0].entry.shards(stored.labels, "1")[0].X()

    plain = first_windows()
    assert "windowing 4 recordings" in capsys.readouterr().err
    mapping = {"time": "time_s", "acc_x": "-acc_x", "acc_y": "acc_y", "acc_z": "acc_z", "gyro_x": "gyro_x",
               "gyro_y": "gyro_y", "gyro_z": "gyro_z", "label": "label"}  # fmt: skip
    (data / "dataset.json").write_text(json.dumps({"columns": mapping}))
    negated = first_windows()
    assert "windowing 4 recordings" in capsys.readouterr().err
    channels = DataSpec().frontend(("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")).channels
    x = [i for i, name in enumerate(channels) if name.endswith("acc_x")]
    assert np.allclose(negated[..., x], -plain[..., x], atol=1e-5) and not np.allclose(negated, plain)
    (data / "dataset.json").unlink()
    assert np.array_equal(first_windows(), plain) and "windowing" not in capsys.readouterr().err
    path = sorted((data / "1").glob("*.csv"))[0]
    stat, text = path.stat(), path.read_text()
    line = text.splitlines()[200]
    edited = line.replace(line.split(",")[1], line.split(",")[1][:-1] + str((int(line.split(",")[1][-1]) + 1) % 10), 1)
    path.write_text(text.replace(line, edited, 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    first_windows()
    assert "windowing 1 recording " in capsys.readouterr().err

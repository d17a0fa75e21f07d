"""A dataset folder as people hand it over (issue 22): dataset.json checked by the schema language and read
through the bounded readers, merge chains and cycles, one label spelled two ways, stale caches, quiet
warnings, files that are not recordings, folders that overlap."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from test_datasets import cli, make_dataset, synthetic

from harlite.data.datasets import load_dataset
from harlite.data.recordings import Recording, write_csv
from harlite.data.windows import DataSpec, load_split
from harlite.errors import DataError


@pytest.fixture
def dataset(tmp_path: Path, harlite_cache: Path) -> Path:
    return make_dataset(tmp_path / "ds", range(3), 50.0, seconds_per_label=8.0)


@pytest.mark.parametrize(("config", "message"), [
    ('{"labels": [["a"]]}', "labels[0] must be a label name"),
    ('{"units": {"acc": ["g"]}}', "units.acc must be one of 'g', 'm/s^2'"),
    ('{"merge": {"wave": {"x": 1}}}', "merge.wave must be a label name"),
    ('{"ignore": [1]}', "ignore[0] must be a label name"),
    ('{"lables": ["wave"]}', "unknown key 'lables'"),
    ('{"columns": {"acc_x": "x"}}', '"columns" must name all of acc_x, acc_y, acc_z'),
    ('{"time_unit": "fortnights"}', "time_unit must be one of"),
    ('{"labels": ["wave", "wave"]}', "appears twice"),
    ('{"labels": NaN}', "NaN is not a number JSON allows"),
    ('{"labels": ["wave"], "labels": ["rest"]}', "the key 'labels' appears twice"),
    ("[" * 100_000 + "]" * 100_000, "is not valid JSON"),
    ('{"merge": {"rest": "wave", "wave": "rest"}}', '"merge" has a cycle: rest -> wave -> rest'),
])  # fmt: skip
def test_malformed_dataset_json_is_one_line_naming_the_field(dataset: Path, config: str, message: str) -> None:
    (dataset / "dataset.json").write_text(config)
    result = cli("data", "info", "--data", dataset)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


@pytest.mark.parametrize("kind", ["huge", "device", "fifo"])
def test_dataset_json_is_read_through_the_bounded_readers(dataset: Path, kind: str) -> None:
    path = dataset / "dataset.json"
    if kind == "huge":
        path.write_text('{"ignore": [' + ",".join(['"x"'] * 400_000) + "]}")  # 1.6 MB
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)
    result = cli("data", "info", "--data", dataset)
    expected = {"huge": "more than the 1 MiB", "device": "not a regular file", "fifo": "is a FIFO"}[kind]
    assert result.exit_code == 2 and expected in result.output, result.output


def test_merge_chains_end_where_they_end(dataset: Path) -> None:
    (dataset / "dataset.json").write_text('{"merge": {"brush": "wave", "wave": "moving"}}')
    data = load_dataset(dataset)
    assert data.labels == ("moving", "rest")
    spec = DataSpec(data=str(dataset))
    counts = load_split(spec).pool.class_counts(data.labels)
    assert counts["moving"] == 2 * counts["rest"] > 0  # both brush and wave became moving


def test_one_label_spelled_two_ways_is_one_class(tmp_path: Path, harlite_cache: Path) -> None:
    for s, form in enumerate(("NFC", "NFD", "NFC")):
        name = unicodedata.normalize(form, "café")
        write_csv(
            synthetic(s, 50.0, 8.0, labels=("wave", "rest")).with_classes(("wave", "rest")), tmp_path / f"{s}/a.csv"
        )
        path = tmp_path / f"{s}/a.csv"
        path.write_text(path.read_text().replace(",rest\n", f",{name}\n"))
    assert load_dataset(tmp_path).labels == ("café", "wave")


def test_cached_windows_follow_the_content_and_keep_their_warnings(dataset: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    path = dataset / "person1" / "session.csv"
    lines = path.read_text().splitlines()
    fields = lines[200].split(",")
    lines[200] = ",".join([fields[0], "1e30", *fields[2:]])  # a spike: clipped, with a warning
    path.write_text("\n".join(lines) + "\n")
    spec = DataSpec(data=str(dataset))
    first, again = load_split(spec), load_split(spec)  # the second from the cache
    assert any("clipped" in w for w in first.warnings) and first.warnings == again.warnings
    stat = path.stat()
    text = path.read_text()
    swapped = text.replace(",wave\n", ",r_s_\n").replace(",rest\n", ",wave\n").replace(",r_s_\n", ",rest\n")
    assert len(swapped) == len(text)
    path.write_text(swapped)  # edited in place: same size, same modification time
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited = load_split(spec)
    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path / "fresh-cache"))
    fresh = load_split(spec)
    assert not np.array_equal(first.pool.y, edited.pool.y) and np.array_equal(edited.pool.y, fresh.pool.y)


def test_files_that_are_not_recordings_are_reported(dataset: Path) -> None:
    for i in range(30):
        (dataset / "person0" / f"note{i}.txt").write_text("x")
    (dataset / "person0" / "export.CSV.bak").write_text("x")
    os.mkfifo(dataset / "person1" / "pipe.csv")
    (dataset / "person2" / "zero.csv").symlink_to("/dev/zero")
    result = cli("data", "info", "--data", dataset)
    assert result.exit_code == 0, result.output
    assert "skipped 33 file(s) that are not recordings" in result.output


def test_overlapping_folders_are_refused(dataset: Path, tmp_path: Path) -> None:
    result = cli("data", "info", "--data", dataset, "--test-data", dataset)
    assert result.exit_code == 2 and "overlap" in result.output
    result = cli("data", "info", "--data", dataset, "--test-data", dataset / "person1")
    assert result.exit_code == 2 and "overlap" in result.output
    from harlite.data.windows import check_folders

    with pytest.raises(DataError, match="lies inside --data"):
        check_folders(DataSpec(data=str(dataset)), dataset / "runs" / "mine")
    check_folders(DataSpec(data=str(dataset)), tmp_path / "runs")


def test_a_test_folder_with_one_label_is_scored_for_it(dataset: Path, tmp_path: Path) -> None:
    write_csv(synthetic(7, 50.0, 8.0, labels=("rest",)), tmp_path / "test" / "eve" / "rest.csv")
    split = load_split(DataSpec(data=str(dataset), test_data=str(tmp_path / "test")))
    counts = split.test.class_counts(split.protocol.labels)
    assert counts["rest"] > 0 and counts["wave"] == counts["brush"] == 0
    assert any("no window of brush, wave" in w for w in split.warnings)


def test_a_test_folder_without_labels_says_how_to_replay_it(dataset: Path, tmp_path: Path) -> None:
    rec = synthetic(8, 50.0, 8.0, labels=("rest",))
    write_csv(Recording(rec.samples, rec.rate), tmp_path / "test" / "eve" / "a.csv")  # no label column
    result = cli("data", "info", "--data", dataset, "--test-data", tmp_path / "test")
    assert result.exit_code == 2 and "has no labelled window" in result.output
    assert f"harlite simulate BUNDLE --dataset {tmp_path / 'test'}" in result.output

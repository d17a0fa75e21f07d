"""The official UCI HAR windows from a folder, its zip or the archive around it; fetch over real HTTP."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import shutil
import socket
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bombs import measure, zip_bomb
from click.testing import CliRunner

from harlite.cli import main
from harlite.data.recordings import RecordingError
from harlite.data.uci_har import FOLDER, INNER_ZIP, fetch_uci_har, load_uci_har_windows
from harlite.errors import HarliteError


@pytest.mark.parametrize("which", ["folder", "parent", "zip", "archive", "archive_folder"])
def test_every_form_of_the_dataset_gives_the_same_windows(
    which: str, uci_har_folder: Path, uci_har_zip: Path, uci_har_archive: Path, uci_har_expected, harlite_cache: Path
) -> None:
    path = {"folder": uci_har_folder, "parent": uci_har_folder.parent, "zip": uci_har_zip, "archive": uci_har_archive}
    if which == "archive_folder":  # a folder holding only the downloaded archive
        path[which] = harlite_cache / "downloads"
        path[which].mkdir(exist_ok=True)
        shutil.copy(uci_har_archive, path[which])
    X, y, subject = load_uci_har_windows(path[which])
    assert X.shape == (7, 128, 9) and X.dtype == np.float32
    # each channel holds its own index + 10 * window + t / 1000: the channel order is body_acc, body_gyro, total_acc
    np.testing.assert_allclose(X, uci_har_expected[0], rtol=1e-6)
    assert y.tolist() == uci_har_expected[1].tolist() == [0, 1, 5, 3, 4, 2, 0]
    assert subject.tolist() == uci_har_expected[2].tolist() == [1, 1, 3, 3, 2, 4, 4]


def test_the_parsed_windows_are_cached(uci_har_zip: Path, harlite_cache: Path) -> None:
    first = load_uci_har_windows(uci_har_zip)
    assert any(harlite_cache.glob("uci-har-*.npz"))
    second = load_uci_har_windows(uci_har_zip)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def _broken_copy(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    edit(dst)
    return dst


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: (d / "test/Inertial Signals/body_gyro_y_test.txt").unlink(),
            r"lacks test/Inertial Signals/body_gyro_y",
        ),
        (lambda d: (d / "train/y_train.txt").write_text("1\n2\n"), r"disagree"),
        (lambda d: (d / "train/y_train.txt").write_text("1\n2\n7\n4\n"), r"outside 1-6"),
        (lambda d: (d / "test/Inertial Signals/total_acc_x_test.txt").write_text("1 2 3\n"), r"holds 3 values"),
        (
            lambda d: (d / "test/subject_test.txt").write_text("2\nfour\n4\n"),
            r"subject_test.txt holds a value that is not a number",
        ),
    ],
)
def test_a_damaged_dataset_is_a_clear_error(
    tmp_path: Path, uci_har_folder: Path, harlite_cache: Path, edit, message: str
) -> None:
    path = _broken_copy(uci_har_folder, tmp_path / "UCI HAR Dataset", edit)
    with pytest.raises(RecordingError, match=message):
        load_uci_har_windows(path)


def test_not_the_dataset(tmp_path: Path, harlite_cache: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"PK not really")
    with pytest.raises(HarliteError, match="is not a zip file"):
        load_uci_har_windows(tmp_path / "x.zip")
    with pytest.raises(HarliteError, match="holds no UCI HAR dataset"):
        load_uci_har_windows(tmp_path)
    with pytest.raises(HarliteError, match="does not exist"):
        load_uci_har_windows(tmp_path / "nowhere")
    with pytest.raises(HarliteError, match="harlite data fetch uci-har"):
        load_uci_har_windows(None)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on localhost serving ``tmp_path/www``; yields (base url, folder)."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/uci.zip"


def test_fetch_downloads_checks_and_records(
    http_server, uci_har_archive: Path, tmp_path: Path, harlite_cache: Path
) -> None:
    base, root = http_server
    shutil.copy(uci_har_archive, root / "uci.zip")
    dest = tmp_path / "cache" / "uci-har.zip"
    assert fetch_uci_har(dest, url=f"{base}/uci.zip") == dest
    assert dest.read_bytes() == uci_har_archive.read_bytes()
    record = json.loads(dest.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(uci_har_archive.read_bytes()).hexdigest()
    assert record["bytes"] == uci_har_archive.stat().st_size and record["origin"] == f"{base}/uci.zip"
    # a valid copy is kept: no network needed the second time
    assert fetch_uci_har(dest, url=_closed_port_url()) == dest
    assert load_uci_har_windows(dest)[0].shape == (7, 128, 9)


def test_fetch_refuses_a_download_that_is_not_the_dataset(http_server, uci_har_folder: Path, tmp_path: Path) -> None:
    base, root = http_server
    (root / "page.zip").write_text("<html>moved</html>")
    shutil.make_archive(str(root / "other"), "zip", uci_har_folder / "train")  # a zip, but not the dataset
    dest = tmp_path / "uci-har.zip"
    with pytest.raises(HarliteError, match="is not a zip file"):
        fetch_uci_har(dest, url=f"{base}/page.zip")
    with pytest.raises(HarliteError, match="does not contain the UCI HAR dataset"):
        fetch_uci_har(dest, url=f"{base}/other.zip")
    with pytest.raises(HarliteError, match="HTTP 404"):
        fetch_uci_har(dest, url=f"{base}/missing.zip")
    assert not dest.exists()


def test_fetch_offline_fails_fast_and_names_from(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(HarliteError, match=r"--from PATH") as info:
        fetch_uci_har(tmp_path / "uci-har.zip", url=_closed_port_url())
    assert time.perf_counter() - start < 10.0
    assert "Cannot download" in str(info.value) and not (tmp_path / "uci-har.zip").exists()


def test_cli_fetch_from_a_local_zip_then_info(uci_har_archive: Path, harlite_cache: Path, tmp_path: Path) -> None:
    for stale in harlite_cache.glob("uci-har.*"):
        stale.unlink()
    runner = CliRunner()
    result = runner.invoke(main, ["data", "fetch", "uci-har", "--from", str(uci_har_archive)])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == harlite_cache / "uci-har.zip"
    folder = tmp_path / "folder"
    folder.mkdir()
    refused = runner.invoke(main, ["data", "fetch", "uci-har", "--from", str(folder), "--force"])
    assert refused.exit_code == 2 and "is not a file" in refused.output

    info = runner.invoke(main, ["data", "info", "--source", "uci-har", "--json"])  # reads the fetched copy
    assert info.exit_code == 0, info.output
    summary = json.loads(info.stdout)
    assert summary["subjects"] == ["1", "2", "3", "4"]
    assert summary["windows"]["train"] == {
        "WALKING": 1, "WALKING_UPSTAIRS": 1, "WALKING_DOWNSTAIRS": 0, "SITTING": 1, "STANDING": 0, "LAYING": 1, "total": 4,
    }  # fmt: skip
    assert summary["windows"]["test"]["total"] == 3 and summary["windows"]["test"]["STANDING"] == 1
    table = runner.invoke(main, ["data", "info", "--source", "uci-har", "--from", str(uci_har_archive)])
    assert table.exit_code == 0 and "4 subjects" in table.stdout.splitlines()[0] and "LAYING" in table.stdout
    wrong = runner.invoke(main, ["data", "info", "--from", str(uci_har_archive)])
    assert wrong.exit_code == 2 and "--source uci-har" in wrong.output


# A fresh 'harlite data fetch' peaks at about 60 MiB; unpacking any of the bombs below would take 1 GiB.
FETCH_MEMORY_CAP_MIB = 150
Y_TRAIN = f"{FOLDER}/train/y_train.txt"


def _nested_bomb(path: Path) -> Path:
    """The UCI layout (a dataset zip inside the archive) with a bomb as the dataset zip."""
    inner = zip_bomb(path.with_name("inner.zip"), {Y_TRAIN: 1 << 30})
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(inner, INNER_ZIP)
    return path


@pytest.mark.parametrize(
    ("bomb", "message"),
    [
        (lambda p: zip_bomb(p, {Y_TRAIN: 1 << 30}), r"y_train.txt would expand to 1 GiB, more than the 64 MiB"),
        (lambda p: zip_bomb(p, {Y_TRAIN: 48 << 20}), r"y_train.txt would expand 1\d\d\d times, more than 100"),
        (lambda p: zip_bomb(p, {Y_TRAIN: 1 << 30}, declared=1000), r"y_train.txt is damaged \(Bad CRC-32"),
        (_nested_bomb, r"UCI HAR Dataset.zip/UCI HAR Dataset/train/y_train.txt would expand to 1 GiB"),
    ],
    ids=["honest", "ratio", "lying", "nested"],
)
def test_fetch_refuses_a_zip_bomb_in_little_memory(tmp_path: Path, bomb, message: str) -> None:
    """Before: 'data fetch --from' read each member whole; a 1 MB bomb of 1 GiB took 2,085 MiB."""
    path = bomb(tmp_path / "uci.zip")
    assert path.stat().st_size < 2 << 20
    cache = tmp_path / "cache"
    run = measure([sys.executable, "-m", "harlite", "data", "fetch", "uci-har", "--from", str(path)],
                  env={"HARLITE_CACHE": str(cache)})  # fmt: skip
    lines = str(run["stderr"]).strip().splitlines()
    assert run["returncode"] == 2 and len(lines) == 1 and re.search(message, lines[0]), run["stderr"]
    assert run["peak_mib"] < FETCH_MEMORY_CAP_MIB, run["peak_mib"]
    assert not (cache / "uci-har.zip").exists()


def test_the_check_and_the_parse_stream_a_large_member(
    tmp_path: Path, uci_har_folder: Path, harlite_cache: Path
) -> None:
    """A dataset file bigger than the member cap is refused by name, in the folder form too."""
    folder = tmp_path / FOLDER
    shutil.copytree(uci_har_folder, folder)
    with open(folder / "train/y_train.txt", "wb") as f:
        f.truncate(65 << 20)  # sparse: 65 MiB of zeros without using the disk
    with pytest.raises(HarliteError, match=r"y_train.txt is 65 MiB, more than the 64 MiB"):
        load_uci_har_windows(folder)

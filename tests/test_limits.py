"""harlite.io.limits: bounded reading of files, gzip and zip members, against real bombs, devices and FIFOs."""

from __future__ import annotations

import gzip
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest
from bombs import gzip_bomb, peak_memory, zip_bomb

from harlite.errors import BundleError, DataError
from harlite.io.limits import MiB, bounded_lines, open_bounded, open_regular, read_bounded, zip_member

# A fresh Python with harlite.io.limits imported peaks at about 40 MiB; a bomb must not add more than this.
MEMORY_CAP_MIB = 150


def test_read_bounded_returns_plain_and_gzipped_bytes_within_the_caps(tmp_path: Path) -> None:
    text = b"time_s,acc_x\n" + b"".join(b"%d,0.5\n" % i for i in range(10000))
    (tmp_path / "a.csv").write_bytes(text)
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(text))
    assert read_bounded(tmp_path / "a.csv", len(text)) == text
    assert read_bounded(tmp_path / "a.csv.gz", len(text), max_ratio=100) == text
    with pytest.raises(DataError, match=r"a.csv is 88,903 bytes, more than the 88,902 bytes"):
        read_bounded(tmp_path / "a.csv", len(text) - 1)
    with pytest.raises(DataError, match=r"a.csv.gz holds more than .* once decompressed"):
        read_bounded(tmp_path / "a.csv.gz", len(text) - 1, max_ratio=100)


def test_a_gzip_bomb_is_refused_in_little_memory(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "walk.csv.gz", 1 << 30)  # 1 GiB of zeros in 1 MB
    assert bomb.stat().st_size < 2 * MiB
    result = peak_memory(
        f"from harlite.io.limits import read_bounded\nread_bounded({str(bomb)!r}, 1 << 30, max_ratio=100)"
    )
    assert result["error"] and "expands more than 100 times" in result["error"] and "walk.csv.gz" in result["error"]
    assert result["peak_mib"] < MEMORY_CAP_MIB, result
    # the same bomb under a plain size cap: cut off at the cap, streamed
    result = peak_memory(f"from harlite.io.limits import read_bounded\nread_bounded({str(bomb)!r}, 32 << 20)")
    assert "holds more than 32 MiB once decompressed" in result["error"] and result["peak_mib"] < MEMORY_CAP_MIB


def test_a_damaged_gzip_is_a_clear_error(tmp_path: Path) -> None:
    data = gzip.compress(b"x" * 100000)
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.csv.gz is damaged"):
        read_bounded(tmp_path / "cut.csv.gz", MiB, max_ratio=100)


def test_devices_fifos_and_folders_are_refused_without_reading(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"/dev/zero is a device or special file, not a regular file"):
        read_bounded("/dev/zero", 1 << 40)
    with pytest.raises(BundleError, match=r"is a folder, not a regular file"):
        open_regular(tmp_path, BundleError)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _catch(lambda: read_bounded(fifo, MiB), outcome), daemon=True)
    worker.start()
    worker.join(5)  # opening a FIFO for reading blocks until a writer comes: it must not
    assert not worker.is_alive() and isinstance(outcome[0], DataError) and "is a FIFO" in str(outcome[0])
    with pytest.raises(DataError, match="does not exist"):
        open_regular(tmp_path / "nowhere")


def _catch(call, into: list[BaseException]) -> None:
    try:
        call()
    except BaseException as e:  # noqa: BLE001
        into.append(e)


def test_zip_members_are_capped_by_declared_size_ratio_and_actual_bytes(tmp_path: Path) -> None:
    honest = zip_bomb(tmp_path / "honest.zip", {"big.txt": 1 << 30, "mid.txt": 48 << 20})
    lying = zip_bomb(tmp_path / "lying.zip", {"small.txt": 256 << 20}, declared=1000)
    with zipfile.ZipFile(honest) as archive:
        with pytest.raises(DataError, match=r"honest.zip/big.txt would expand to 1 GiB, more than the 64 MiB"):
            zip_member(archive, archive.getinfo("big.txt"), 64 * MiB, 100, str(honest))
        with pytest.raises(DataError, match=r"honest.zip/mid.txt would expand 1\d\d\d times, more than 100"):
            zip_member(archive, archive.getinfo("mid.txt"), 64 * MiB, 100, str(honest))
    with zipfile.ZipFile(lying) as archive, pytest.raises(DataError, match=r"lying.zip/small.txt is damaged \(Bad CRC"):
        zip_member(archive, archive.getinfo("small.txt"), 64 * MiB, 100, str(lying)).read()
    # ordinary members read back whole
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", "1 2 3\n" * 1000)
    with zipfile.ZipFile(good) as archive, zip_member(archive, archive.getinfo("a.txt"), MiB, 100, "good.zip") as f:
        assert f.read() == b"1 2 3\n" * 1000


def test_a_lying_zip_bomb_stays_in_little_memory(tmp_path: Path) -> None:
    """zipfile's own read() decompresses a member in one piece before it checks the declared size: the
    capped stream reads in 1 MiB steps, so a member that lies about its size costs no memory."""
    bomb = zip_bomb(tmp_path / "lying.zip", {"m.txt": 1 << 30}, declared=1000)
    code = (f"import zipfile\nfrom harlite.io.limits import zip_member\narchive = zipfile.ZipFile({str(bomb)!r})\n"
            "zip_member(archive, archive.getinfo('m.txt'), 1 << 30, 2000, 'lying.zip').read()")  # fmt: skip
    result = peak_memory(code)
    assert "Bad CRC" in result["error"] and result["peak_mib"] < MEMORY_CAP_MIB, result


def test_bounded_lines_refuse_an_endless_line() -> None:
    stream = io.BytesIO(b"time_s,acc_x\n0,1\n" + b"9" * (2 * MiB) + b"\n")
    lines = bounded_lines(stream, MiB, "r.csv")
    assert next(lines) == b"time_s,acc_x\n" and next(lines) == b"0,1\n"
    with pytest.raises(DataError, match=r"r.csv line 3 is longer than 1 MiB"):
        next(lines)


def test_open_bounded_streams(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_bytes(b"a\nb\n")
    with open_bounded(tmp_path / "r.csv", 16) as f:
        assert list(bounded_lines(f, 8, "r.csv")) == [b"a\n", b"b\n"]


def test_run_folder_records_and_cache_files_are_read_bounded(tmp_path: Path, harlite_cache: Path) -> None:
    """A run folder's JSON, a file harlite would replace and a cache file are outside input too (issue 22):
    a FIFO or a device there is refused or passed over at once, a damaged cache file is built again."""
    import hashlib

    import numpy as np

    from harlite.io.cache import cache_dir, cached_arrays
    from harlite.io.files import check_replaceable, read_json

    os.mkfifo(tmp_path / "protocol.json")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    for name, message in (("protocol.json", "is a FIFO"), ("zero.json", "not a regular file")):
        with pytest.raises(BundleError, match=message):
            read_json(tmp_path / name)
    (tmp_path / "nan.json").write_text('{"a": NaN}')
    with pytest.raises(BundleError, match="NaN is not a number JSON allows"):
        read_json(tmp_path / "nan.json")
    with pytest.raises(BundleError, match="exists; pass --force"):
        check_replaceable(tmp_path / "protocol.json", force=False)  # no hang on the FIFO
    built = {"x": np.arange(3)}
    for prefix, plant in (
        ("fifo", lambda p: os.mkfifo(p)),
        ("damaged", lambda p: p.write_bytes(b"PK\x03\x04 not a zip")),
    ):
        path = cache_dir() / f"{prefix}-{hashlib.sha256(b'id').hexdigest()[:16]}.npz"
        plant(path)
        got = cached_arrays(prefix, "id", lambda: built)
        assert (got["x"] == built["x"]).all() and path.is_file()
        assert (cached_arrays(prefix, "id", lambda: {})["x"] == built["x"]).all()  # the good copy is kept

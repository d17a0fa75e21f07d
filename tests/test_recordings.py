"""The CSV recording format: exact round trip, resampling, header variants, errors naming file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from harlite.core.frontend import ACC
from harlite.core.protocol import UCI_LABELS, UNLABELLED
from harlite.data.recordings import CSV_HEADER, Recording, RecordingError, Units, read_csv, resample, write_csv
from harlite.errors import HarliteError
from harlite.io.cache import cache_dir


def _recording(n: int = 500, rate: float = 50.0, labelled: bool = True, seed: int = 0) -> Recording:
    """A phone-like recording: gravity on x, a 2 Hz gait, noise; labels in blocks with unlabelled gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    samples = rng.normal(0, 0.05, size=(n, 6))
    samples[:, 0] += 1.0 + 0.3 * np.sin(2 * np.pi * 2 * t)
    samples[:, 4] += 0.8 * np.sin(2 * np.pi * 2 * t + 0.4)
    labels = None
    if labelled:
        labels = np.repeat(np.array([0, 5, UNLABELLED, 3, 1], dtype=np.int16), -(-n // 5))[:n]
    return Recording(samples.astype(np.float32), rate, labels, UCI_LABELS, source="test")


def _write(path: Path, rows: list[str], header: str = CSV_HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _rows(n: int = 10, dt: float = 0.02, label: str = "walking") -> list[str]:
    return [f"{i * dt:.12g},0.1,0.2,1.0,0.01,0.02,0.03,{label}" for i in range(n)]


@pytest.mark.parametrize("name", ["rec.csv", "rec.csv.gz"])
def test_round_trip_is_exact(tmp_path: Path, name: str) -> None:
    rec = _recording()
    path = write_csv(rec, tmp_path / name)
    text = (gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()).decode()
    assert text.splitlines()[0] == CSV_HEADER
    assert text.splitlines()[1].startswith("0.0,") and text.splitlines()[2].startswith("0.02,")
    back = read_csv(path)
    assert back.rate == 50.0 and back.source == str(path) and back.warnings == ()
    np.testing.assert_array_equal(back.samples, rec.samples)
    assert back.label_names == rec.label_names
    assert back.classes == ("WALKING", "LAYING", "SITTING", "WALKING_UPSTAIRS")  # in order of appearance
    np.testing.assert_array_equal(back.with_classes(UCI_LABELS).labels, rec.labels)


def test_without_labels_the_column_is_absent(tmp_path: Path) -> None:
    path = write_csv(_recording(labelled=False), tmp_path / "rec.csv")
    assert path.read_text().splitlines()[0] == CSV_HEADER.removesuffix(",label")
    assert read_csv(path).labels is None


def test_write_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = write_csv(_recording(), tmp_path / "rec.csv")
    with pytest.raises(HarliteError, match="--force"):
        write_csv(_recording(seed=1), path)
    write_csv(_recording(seed=1), path, force=True)
    np.testing.assert_array_equal(read_csv(path).samples, _recording(seed=1).samples)


def test_header_in_any_order_and_case_crlf_bom_blank_lines(tmp_path: Path) -> None:
    rows = [f"{lab},{i * 0.02:.2f},3,2,1,.6,.5,.4" for i, lab in enumerate(["Sitting", "", " laying ", "Sitting"])]
    text = (
        "LABEL, time_s ,acc_z,acc_y,acc_x,gyro_z,gyro_y,gyro_x\r\n"
        + "\r\n".join(rows[:2] + [""] + rows[2:])
        + "\r\n\r\n"
    )
    path = tmp_path / "rec.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    rec = read_csv(path)
    np.testing.assert_array_equal(rec.samples, np.tile(np.array([1, 2, 3, 0.4, 0.5, 0.6], np.float32), (4, 1)))
    assert rec.classes == ("Sitting", "laying") and rec.labels.tolist() == [0, UNLABELLED, 1, 0]


def test_a_serial_capture_with_comment_lines_reads_as_it_is(tmp_path: Path) -> None:
    """The firmware's banner and ``# pred`` lines are skipped; error lines count them."""
    rows = [f"{i * 0.02:.2f},1,0,0,.4,.5,.6" for i in range(4)]
    capture = ["# harlite_har: BMI270, model 28000 bytes", "time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z", rows[0], rows[1],
               "  # pred,start_s=0.00,label=WALKING", rows[2], rows[3]]  # fmt: skip
    path = tmp_path / "session.csv"
    path.write_text("\n".join(capture) + "\n")
    rec = read_csv(path)
    np.testing.assert_array_equal(rec.samples, np.tile(np.array([1, 0, 0, 0.4, 0.5, 0.6], np.float32), (4, 1)))
    path.write_text("\n".join(capture[:-1] + ["0.02,1,0,0,.4,.5,.6"]) + "\n")
    with pytest.raises(RecordingError, match=r"line 7: time goes back \(0.02 s after 0.04 s\)"):
        read_csv(path)
    path.write_text("# banner\ntime_s,acc_x\n")
    with pytest.raises(RecordingError, match=r"line 2: no column acc_y, acc_z"):
        read_csv(path)


def test_a_100_hz_logger_is_put_on_the_model_grid(tmp_path: Path) -> None:
    rec100 = _recording(n=2000, rate=100.0)
    path = write_csv(rec100, tmp_path / "phone.csv")
    assert read_csv(path).rate == 100.0  # read at its own rate unless a rate is asked for
    rec = read_csv(path, 50.0)
    assert rec.rate == 50.0 and len(rec) == 1000
    # every other sample lies on the grid 0, 0.02, ... s and is taken as it is (the stream resampler
    # interpolates between samples only; it does not low-pass, as a phone's stream cannot wait for the future)
    np.testing.assert_array_equal(rec.samples, rec100.samples[::2])
    assert rec.label_names == rec100.label_names[::2]


def test_an_irregular_stream_is_interpolated_onto_the_model_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t = 1234.5 + np.cumsum(np.r_[0.0, rng.uniform(0.6, 1.4, 599) / 60.0])  # a phone: ~60 Hz, +-40 %
    values = np.stack([np.sin(t + c) for c in range(6)], axis=1).astype(np.float32)
    values[:, :3] *= 0.5
    lines = [",".join(map(repr, [float(ti), *map(float, row)])) for ti, row in zip(t, values)]
    path = _write(tmp_path / "phone.csv", [f"{line}," for line in lines])
    rec = read_csv(path, 50.0)
    grid = t[0] + np.arange(int((t[-1] - t[0]) * 50) + 1) / 50.0
    expected = np.stack([np.interp(grid, t, values[:, c].astype(np.float64)) for c in range(6)], axis=1)
    assert rec.rate == 50.0 and len(rec) == len(grid)
    np.testing.assert_allclose(rec.samples, expected, rtol=0, atol=1e-6)
    assert rec.warnings == ()  # put on the grid it asked for: nothing to warn about


def test_resample_ratio_and_near_rate_tolerance() -> None:
    rec = _recording(n=1190, rate=119.0)  # an Arduino Nano 33 BLE's IMU rate
    out = resample(rec, 50.0)
    assert out.rate == 50.0 and len(out) == 500
    near = resample(_recording(n=100, rate=50.5), 50.0)
    assert len(near) == 100 and near.rate == 50.0  # within the clock tolerance: relabelled only
    assert rec.resampled(25.0).rate == 25.0


def test_a_one_hour_file_reads_back_whole(tmp_path: Path) -> None:
    original = _recording(n=50 * 3600)
    rec = read_csv(write_csv(original, tmp_path / "hour.csv"))
    assert len(rec) == 180_000
    np.testing.assert_array_equal(rec.samples, original.samples)


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (
            _rows(),
            "time_s,acc_x,acc_y,gyro_x,gyro_y,gyro_z,label",
            r"line 1: no column acc_z; the header is 'time_s,acc_x,acc_y,gyro_x",
        ),
        (
            _rows(3) + ["0.060000,0.1,abc,1.0,0.01,0.02,0.03,"] + _rows(2),
            CSV_HEADER,
            r"line 5: 'abc' in column 'acc_y' is not a number",
        ),
        (_rows(3) + ["0.060000,0.1,0.2,1.0,0.01,0.02"], CSV_HEADER, r"line 5: 6 fields"),
        (_rows(3) + ["0.060000,0.1,nan,1.0,0.01,0.02,0.03,"], CSV_HEADER, r"line 5: a value is not a finite number"),
        (_rows(4) + ["0.500000,0.1,0.2,1.0,0.01,0.02,0.03,"], CSV_HEADER, r"line 6: a gap of 0.440 s"),
        (
            _rows(4) + ["0.040000,0.1,0.2,1.0,0.01,0.02,0.03,"],
            CSV_HEADER,
            r"line 6: time goes back \(0.04 s after 0.06 s\).*split it there",
        ),
        (_rows(), "time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,label", r"line 1: missing column gyro_z"),
        (_rows(dt=20.0), CSV_HEADER, r"looks like milliseconds \(50 Hz if so\)"),
        (_rows(dt=2000.0), CSV_HEADER, r"rises by 2000 per sample, which looks like microseconds \(500 Hz"),
        (_rows(dt=2e7), CSV_HEADER, r"looks like nanoseconds \(50 Hz if so\).*\"time_unit\": \"ns\""),
        (_rows(dt=1e6), CSV_HEADER, r"looks like microseconds \(1 Hz if so\)"),
        (_rows(dt=1e-9), CSV_HEADER, r"gives 1e\+09 Hz"),
        ([], CSV_HEADER, r"no samples after the header"),
        (_rows(1), CSV_HEADER, r"a single sample"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, rows: list[str], header: str, message: str) -> None:
    path = _write(tmp_path / "bad.csv", rows, header)
    with pytest.raises(RecordingError, match=message) as info:
        read_csv(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n\n  \n", "is empty"),
        ("broken.csv.gz", b"not gzip at all", "is damaged"),
        ("latin1.csv", CSV_HEADER.encode() + b"\n\xff\xfe", "line 2: 1 fields, the header names 8"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RecordingError, match=message):
        read_csv(path)
    with pytest.raises(RecordingError, match="does not exist"):
        read_csv(tmp_path / "missing.csv")


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARLITE_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and cache_dir().is_dir()


def test_a_rate_too_low_for_the_model_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "slow.csv", _rows(n=40, dt=0.2))  # 5 Hz
    assert read_csv(path, 10.0).rate == 10.0  # upsampled twice: fine
    with pytest.raises(RecordingError, match=r"gives 5 Hz.*the model samples at 50 Hz, so at least 8.33 Hz"):
        read_csv(path, 50.0)


def test_accelerometer_only_and_any_label_names(tmp_path: Path) -> None:
    rows = [f"{i * 0.04:.2f},0.0,1.0,0.0,{lab}" for i, lab in enumerate(["brushing teeth"] * 3 + ["Zähne"] * 3)]
    rec = read_csv(_write(tmp_path / "wrist.csv", rows, "time_s,acc_x,acc_y,acc_z,label"))
    assert rec.raw_channels == ACC and rec.samples.shape == (6, 3) and rec.rate == pytest.approx(25.0)
    assert rec.classes == ("brushing teeth", "Zähne") and rec.label_names[-1] == "Zähne"
    with pytest.raises(RecordingError, match="no gyro_x"):
        rec.with_raw_channels(("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"))


def test_units_from_the_dataset_and_units_that_cannot_be_right(tmp_path: Path) -> None:
    header = CSV_HEADER
    si = [f"{i * 0.02:.2f},0.0,0.0,9.80665,0.0,0.0,57.29578,walk" for i in range(50)]
    path = _write(tmp_path / "si.csv", si, header)
    with pytest.raises(RecordingError, match=r"looks like m/s\^2"):
        read_csv(path)
    with pytest.raises(RecordingError, match=r"looks like deg/s"):
        read_csv(path, units=Units(acc="m/s^2"))
    rec = read_csv(path, units=Units(acc="m/s^2", gyro="deg/s"))
    np.testing.assert_allclose(rec.samples[0], [0, 0, 1, 0, 0, 1], rtol=1e-6)
    with pytest.raises(HarliteError, match="unknown acc unit 'mg'"):
        Units(acc="mg")


def test_a_spike_is_clipped_with_a_warning_and_jitter_is_regridded(tmp_path: Path) -> None:
    rows = [f"{i * 0.02:.3f},0.0,0.0,1.0,0.0,0.0,0.1,walk" for i in range(200)]
    rows[100] = "2.000,0.0,0.0,1e30,0.0,0.0,0.1,walk"
    rec = read_csv(_write(tmp_path / "spike.csv", rows))
    assert rec.samples[100, 2] == 16.0 and rec.samples[99, 2] == 1.0
    assert len(rec.warnings) == 1 and "1 sample(s) beyond what an IMU reports" in rec.warnings[0]
    rows[101] = "2.020,0.0,0.0,-1e999,0.0,0.0,0.1,walk"  # beyond float32: a spike too, clipped before resampling
    for rate in (40.0, 64.0):
        rec = read_csv(_write(tmp_path / "spikes.csv", rows), rate)
        assert np.isfinite(rec.samples).all() and np.abs(rec.samples[:, 2]).max() == 16.0
        assert "2 sample(s) beyond what an IMU reports" in rec.warnings[0]
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.012, 0.028, 300))  # a phone logger: 20 ms +- 8 ms
    jitter = [f"{t:.6f},{np.sin(t):.6f},0.0,1.0,walk" for t in times]
    rec = read_csv(_write(tmp_path / "jitter.csv", jitter, "time_s,acc_x,acc_y,acc_z,label"))
    assert "regridded" in rec.warnings[0] and rec.rate == pytest.approx(299 / (times[-1] - times[0]))
    grid = times[0] + np.arange(len(rec)) / rec.rate
    np.testing.assert_allclose(rec.samples[:, 0], np.sin(grid), atol=2e-3)  # linear interpolation of a sine


def test_a_large_csv_costs_a_small_multiple_of_the_samples_it_holds(tmp_path: Path) -> None:
    """Streamed in blocks: a 20 MB recording (300,000 rows) adds less than 10 times the memory of its
    samples and labels (26 bytes a row), measured in a fresh process; the issue's 200 MB CSV took 1.56 GB."""
    from bombs import peak_memory

    rows, row = 300_000, ",0.012345,-0.987654,0.102345,0.012345,-0.021345,0.003145,WALKING\n"
    path = tmp_path / "long.csv"
    path.write_text(CSV_HEADER + "\n" + "".join(f"{i / 50:.2f}{row}" for i in range(rows)))
    assert path.stat().st_size > 20e6
    base = peak_memory("import numpy\nfrom harlite.data.recordings import read_csv")
    run = peak_memory(f"from harlite.data.recordings import read_csv\nassert len(read_csv({str(path)!r})) == {rows}")
    useful_mib = rows * 26 / 2**20
    assert run["error"] is None and run["peak_mib"] - base["peak_mib"] < 10 * useful_mib, (run, base)

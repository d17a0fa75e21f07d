"""Other people's files: phone loggers' exports and WISDM, imported or read in place through dataset.json.

Every input is synthesized by tests/formats.py from a HAPT recording (so the right result is known):
units, axes, clocks, separators and quirks as the app or dataset writes them.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import formats
import numpy as np
import pytest
from click.testing import CliRunner

from harlite.cli import main
from harlite.core.frontend import ACC, ACC_CHANNELS
from harlite.data.datasets import load_dataset
from harlite.data.hapt import load_hapt
from harlite.data.layout import Units
from harlite.data.recordings import RecordingError, read_csv
from harlite.data.windows import DataSpec
from harlite.errors import DataError

SAMPLES = 3000  # a minute of HAPT subject 4 at 50 Hz: walking, then standing


@pytest.fixture
def walk(harlite_cache: Path):
    return formats.piece(load_hapt(["4"])[0], 0, SAMPLES)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(map(str, args)))
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result.exit_code, result.output


def best_lag_error(rec, original, channels: slice) -> tuple[int, np.ndarray]:
    """The lag (0-2 samples: the span every sensor covers may start a sample later) that aligns ``rec``
    with ``original``, and the per-channel median absolute error there."""
    found = []
    for lag in range(3):
        n = min(len(rec), len(original) - lag) - 5
        err = np.abs(rec.samples[5:n, channels] - original.samples[5 + lag : n + lag, channels])
        found.append((float(np.median(err)), lag, np.median(err, axis=0)))
    _, lag, err = min(found, key=lambda f: f[0])
    return lag, err


@pytest.mark.parametrize("style", sorted(formats.PHYPHOX_SEPARATORS))
def test_phyphox_exports_import_as_the_recorded_motion(walk, tmp_path: Path, style: str) -> None:
    src = formats.phyphox(walk, tmp_path / "Acceleration with g.csv", "with_g", style, newline="\r\n")
    code, out = run("data", "import", src, "--format", "phyphox", "--label", "walk", "--subject", "ann",
                    "--out", tmp_path / "ds")  # fmt: skip
    assert code == 0, out
    rec = read_csv(tmp_path / "ds" / "ann" / "Acceleration_with_g.csv")
    assert rec.raw_channels == ("acc_x", "acc_y", "acc_z") and rec.rate == pytest.approx(50.0, rel=1e-3)
    assert rec.classes == ("walk",) and (rec.labels == 0).all()
    lag, err = best_lag_error(rec, walk, slice(0, 3))
    assert lag == 0 and (err < 2e-3).all(), err  # m/s^2 -> g, 9 printed digits, jitter regridded


def test_a_spreadsheet_resave_is_read_in_place_through_dataset_json(walk, tmp_path: Path) -> None:
    """';', decimal commas, "m/s²" in CP1252, CRLF: detected; the error shows the header and the mapping
    that fits, and that mapping in dataset.json reads the folder."""
    (tmp_path / "ds" / "ann").mkdir(parents=True)
    src = formats.spreadsheet(walk, tmp_path / "ds" / "ann" / "walk.csv")
    with pytest.raises(RecordingError) as info:
        read_csv(src)
    message = str(info.value)
    assert "Time (s);Acceleration x (m/s²)" in message and '"acc_x": "Acceleration x (m/s²)"' in message
    assert '"units": {"acc": "m/s^2"}' in message and "--format phyphox" in message
    mapping = json.loads(message[message.index("{") : message.rindex("}") + 1])
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(mapping, ensure_ascii=False))
    rec = load_dataset(tmp_path / "ds", min_labels=0).recordings[0]
    assert any("Windows-1252" in w for w in rec.warnings)
    lag, err = best_lag_error(rec, walk, slice(0, 3))
    assert lag == 0 and (err < 2e-3).all()


def test_linear_acceleration_is_named_and_accepted_only_when_said(walk, tmp_path: Path) -> None:
    src = formats.phyphox(walk, tmp_path / "Linear Acceleration.csv", "linear")
    code, out = run("data", "import", src, "--format", "phyphox", "--label", "walk", "--out", tmp_path / "ds")
    assert code == 2 and "without gravity" in out and "--gravity removed" in out and not (tmp_path / "ds").exists()
    renamed = tmp_path / "renamed.csv"  # the header renamed by hand: no longer silently read as g
    lines = src.read_text().splitlines()
    renamed.write_text("\n".join(["time_s,acc_x,acc_y,acc_z,abs", *lines[1:]]))
    with pytest.raises(RecordingError, match=r"holds no gravity.*linear acceleration"):
        read_csv(renamed)
    code, out = run("data", "import", src, "--format", "phyphox", "--label", "walk", "--gravity", "removed",
                    "--out", tmp_path / "ds")  # fmt: skip
    assert code == 0, out
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text()) == {"gravity": "removed"}
    assert load_dataset(tmp_path / "ds", min_labels=0).gravity == "removed"
    assert DataSpec().frontend(ACC, "removed").channels == ACC  # the front end is told: no gravity to split off
    assert DataSpec().frontend(ACC).channels == ACC_CHANNELS


@pytest.mark.parametrize(("platform", "acc_files", "gyro_rate"), [("android", "total", None), ("android", "split", None),
                                                                    ("ios", "split", 100.0)])  # fmt: skip
def test_a_sensor_logger_folder_joins_its_sensors_on_their_clocks(walk, tmp_path: Path, platform: str, acc_files: str,
                                                                   gyro_rate: float | None) -> None:  # fmt: skip
    folder = formats.sensor_logger(walk, tmp_path / "2024-06-10_14-45-36", platform, gyro_rate)
    if acc_files == "split":
        (folder / "TotalAcceleration.csv").unlink(missing_ok=True)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in folder.iterdir():
            z.write(f, f"{folder.name}/{f.name}")
    code, out = run(
        "data", "import", archive, "--format", "sensor-logger", "--label", "stairs", "--out", tmp_path / "ds"
    )
    assert code == 0, out
    rec = read_csv(tmp_path / "ds" / "subject1" / f"{folder.name}.csv")
    assert rec.raw_channels[-1] == "gyro_z" and rec.rate == pytest.approx(50.0, rel=1e-3)
    lag, err = best_lag_error(rec, walk, slice(0, 6))
    assert (err[:3] < 1e-4).all() and (err[3:] < 0.01).all(), (lag, err)  # iOS's axes turned; gyro interpolated


def test_nanosecond_clocks_are_named_and_read_exactly(walk, tmp_path: Path) -> None:
    folder = formats.sensor_logger(walk, tmp_path / "sl")
    total = folder / "TotalAcceleration.csv"
    text = total.read_text().splitlines()
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("\n".join(["time_s,seconds_elapsed,acc_z,acc_y,acc_x", *text[1:]]))
    with pytest.raises(RecordingError, match=r"looks like nanoseconds \(50 Hz if so\).*\"time_unit\": \"ns\""):
        read_csv(renamed, units=Units(acc="m/s^2"))
    (tmp_path / "ds" / "a").mkdir(parents=True)
    renamed.rename(tmp_path / "ds" / "a" / "walk.csv")
    (tmp_path / "ds" / "dataset.json").write_text('{"time_unit": "ns", "units": {"acc": "m/s^2"}}')
    rec = load_dataset(tmp_path / "ds", min_labels=0).recordings[0]
    assert rec.rate == pytest.approx(50.0, rel=1e-3)


def test_wisdm_raw_text_with_its_quirks(tmp_path: Path, harlite_cache: Path) -> None:
    recordings = load_hapt(["4", "9"])[::2]  # one experiment each: six activities
    src = formats.wisdm(recordings, tmp_path / "WISDM_ar_v1.1_raw.txt")
    code, out = run("data", "import", src, "--format", "wisdm", "--out", tmp_path / "ds", "--json")
    assert code == 0, out
    summary = json.loads(out[out.index("{") :])
    assert summary["left_out"] == {"records: malformed": 1, "records: zero timestamp": 1}
    data = load_dataset(tmp_path / "ds")
    assert data.subjects == ["4", "9"] and data.raw_channels == ("acc_x", "acc_y", "acc_z")
    assert np.allclose(data.rates, 20.0, rtol=0.01) and {"Walking", "Standing"} <= set(data.labels)
    kept = sum(len(r) for r in data.recordings)
    written = sum(1 for line in src.read_text().split(";") if line.strip())
    assert written - 2 - 5 <= kept <= written  # two quirks left out; a few samples lost at clock jumps


def test_what_import_refuses(walk, tmp_path: Path) -> None:
    src = formats.phyphox(walk, tmp_path / "a.csv", "with_g")
    ok = ("data", "import", src, "--format", "phyphox", "--label", "walk", "--out", tmp_path / "ds")
    assert run(*ok)[0] == 0
    code, out = run(*ok)
    assert code == 2 and "exists" in out and "--force" in out
    assert run(*ok, "--force")[0] == 0
    code, out = run("data", "import", src, "--format", "phyphox", "--label", "a,b", "--out", tmp_path / "x")
    assert code == 2 and "label" in out
    gyro = formats.phyphox(walk, tmp_path / "g.csv", "gyro")
    code, out = run("data", "import", gyro, "--format", "phyphox", "--out", tmp_path / "x")
    assert code == 2 and "without acceleration" in out
    (tmp_path / "empty").mkdir()
    code, out = run("data", "import", tmp_path / "empty", "--format", "sensor-logger", "--out", tmp_path / "x")
    assert code == 2 and "TotalAcceleration.csv" in out
    code, out = run("data", "import", src, "--format", "wisdm", "--out", tmp_path / "x")
    assert code == 2 and "WISDM" in out
    with pytest.raises(DataError, match="overlap"):
        from harlite.data.importers import import_source

        import_source(tmp_path, "csv", tmp_path / "ds")


def test_a_dataset_of_sensor_logger_folders_reads_in_place(walk, tmp_path: Path) -> None:
    """dataset.json's "sensors": each recording a folder of per-sensor files, joined on their clocks, the
    same samples as the import gives."""
    for subject in ("ann", "bob"):
        formats.sensor_logger(walk, tmp_path / "ds" / subject / "2024-06-10_14-45-36")
    axes = {f"{s}_{a}": a for s in ("acc", "gyro") for a in "xyz"}
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps({
        "sensors": {"acc": "TotalAcceleration.csv", "gyro": "Gyroscope.csv"}, "columns": {"time": "time", **axes},
        "time_unit": "ns", "units": {"acc": "m/s^2"}}))  # fmt: skip
    data = load_dataset(tmp_path / "ds", min_labels=0)
    assert data.subjects == ["ann", "bob"] and data.raw_channels[-1] == "gyro_z"
    code, out = run("data", "import", tmp_path / "ds" / "ann" / "2024-06-10_14-45-36", "--format", "sensor-logger",
                    "--out", tmp_path / "imported")  # fmt: skip
    assert code == 0, out
    imported = read_csv(tmp_path / "imported" / "subject1" / "2024-06-10_14-45-36.csv")
    np.testing.assert_allclose(data.recordings[0].samples, imported.samples, atol=1e-6)

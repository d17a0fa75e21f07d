"""Files in other people's formats, synthesized from HAPT recordings so that the right import is known.

No file here is copied from the internet: each writer takes a HAPT ``Recording`` (50 Hz, acc in g with
gravity, gyro in rad/s, UCI HAR's phone axes) and writes what the named app or dataset would have
written for that motion, converting units, axes, clocks and labels the way the source does:

- ``phyphox``: one CSV of an experiment ("Acceleration with g", "Linear Acceleration", "Gyroscope"),
  header quoted, numbers as Java's ``0.000000000E0``, one of phyphox's five separator/decimal choices.
- ``sensor_logger``: a Sensor Logger folder: ``Accelerometer.csv`` (gravity-free), ``Gravity.csv``,
  ``TotalAcceleration.csv`` (Android only), ``Gyroscope.csv`` and ``Metadata.csv``; every file
  ``time,seconds_elapsed,z,y,x`` on its own clock (Unix-epoch nanoseconds), m/s^2 and rad/s, iOS with
  the opposite sign for acceleration and gravity.
- ``wisdm``: WISDM v1.1 raw text, ``user,activity,timestamp,x,y,z;`` at 20 Hz in m/s^2 with gravity,
  nanosecond uptime stamps, and its quirks (zero timestamps, a record cut short, two on one line).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

G = 9.80665
HAPT_TO_WISDM = {"WALKING": "Walking", "WALKING_UPSTAIRS": "Upstairs", "WALKING_DOWNSTAIRS": "Downstairs",
                 "SITTING": "Sitting", "STANDING": "Standing", "LAYING": "Lying"}  # fmt: skip
PHYPHOX_SEPARATORS = {"comma": (",", "."), "tab": ("\t", "."), "semicolon": (";", "."),
                      "tab_comma": ("\t", ","), "semicolon_comma": (";", ",")}  # fmt: skip


def java_sci(value: float, decimal: str = ".") -> str:
    """``value`` as Java's DecimalFormat("0.000000000E0") prints it: 1.234567890E-2, -9.806650000E0."""
    if value == 0 or not math.isfinite(value):
        text = (
            "0.000000000E0" if value == 0 else ("NaN" if math.isnan(value) else ("-" if value < 0 else "") + "\u221e")
        )
    else:
        exponent = math.floor(math.log10(abs(value)))
        mantissa = round(value / 10**exponent, 9)
        if abs(mantissa) >= 10:
            mantissa, exponent = mantissa / 10, exponent + 1
        text = f"{mantissa:.9f}E{exponent}"
    return text.replace(".", decimal)


def gravity_of(rec, cutoff_hz: float = 0.3) -> np.ndarray:
    """(n, 3) gravity estimate (g) of a recording's acceleration: a zero-phase 0.3 Hz low-pass, as a phone's
    fusion would give it (better than a causal filter could)."""
    from scipy import signal

    sos = signal.butter(3, cutoff_hz, fs=rec.rate, output="sos")
    return signal.sosfiltfilt(sos, rec.samples[:, :3].astype(np.float64), axis=0)


def clock(n: int, rate: float, start: float, jitter: float, seed: int) -> np.ndarray:
    """Sample times (s) of a sensor clock: ``start + k / rate`` plus uniform jitter (a fraction of a step)."""
    rng = np.random.default_rng(seed)
    return start + (np.arange(n) + rng.uniform(-jitter, jitter, n)) / rate


def phyphox(rec, path: Path, experiment: str = "with_g", style: str = "comma", encoding: str = "utf-8",
            newline: str = "\n", jitter: float = 0.1, seed: int = 0) -> Path:  # fmt: skip
    """A phyphox export of ``rec``: experiment "with_g" (Acceleration with g), "linear" (Linear
    Acceleration, gravity removed) or "gyro" (Gyroscope); ``style`` one of PHYPHOX_SEPARATORS."""
    sep, decimal = PHYPHOX_SEPARATORS[style]
    t = clock(len(rec), rec.rate, 0.0, jitter, seed) + 0.0137  # phyphox's first sample comes a little after 0
    if experiment == "gyro":
        values = rec.samples[:, 3:6].astype(np.float64)
        names = [f"Gyroscope {a} (rad/s)" for a in "xyz"] + ["Absolute (rad/s)"]
    else:
        acc = rec.samples[:, :3].astype(np.float64)
        if experiment == "linear":
            acc = acc - gravity_of(rec)
        values = acc * G
        prefix = "Linear Acceleration" if experiment == "linear" else "Acceleration"
        names = [f"{prefix} {a} (m/s^2)" for a in "xyz"] + ["Absolute acceleration (m/s^2)"]
    values = np.column_stack([values, np.linalg.norm(values, axis=1)])
    lines = [sep.join(f'"{name}"' for name in ["Time (s)", *names])]
    for ti, row in zip(t, values):
        lines.append(sep.join(java_sci(float(v), decimal) for v in (ti, *row)))
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def spreadsheet(rec, path: Path, seed: int = 0) -> Path:
    """A phyphox "Acceleration with g" export after a European spreadsheet saved it again: ';' between
    fields, decimal commas, plain numbers, the header unquoted with "m/s²", CP1252 and CRLF line ends."""
    t = clock(len(rec), rec.rate, 0.0, 0.1, seed) + 0.0137
    acc = rec.samples[:, :3].astype(np.float64) * G
    lines = [
        "Time (s);Acceleration x (m/s\u00b2);Acceleration y (m/s\u00b2);Acceleration z (m/s\u00b2);"
        "Absolute acceleration (m/s\u00b2)"
    ]
    for ti, row in zip(t, acc):
        fields = [f"{ti:.6f}", *(f"{v:.8g}" for v in row), f"{float(np.linalg.norm(row)):.8g}"]
        lines.append(";".join(fields).replace(".", ","))
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def sensor_logger(rec, folder: Path, platform: str = "android", gyro_rate: float | None = None,
                  start_ns: int = 1_718_030_736_872_695_300, jitter: float = 0.05, seed: int = 0) -> Path:  # fmt: skip
    """A Sensor Logger export folder of ``rec``: each sensor on its own clock (offsets of a few ms),
    iOS without TotalAcceleration.csv and with acceleration and gravity negated."""
    from scipy.signal import resample_poly

    folder.mkdir(parents=True, exist_ok=True)
    sign = -1.0 if platform == "ios" else 1.0
    gravity = gravity_of(rec) * G
    total = rec.samples[:, :3].astype(np.float64) * G
    files = {"Accelerometer": (total - gravity) * sign, "Gravity": gravity * sign}
    if platform == "android":
        files["TotalAcceleration"] = total
    if rec.samples.shape[1] == 6:
        gyro = rec.samples[:, 3:6].astype(np.float64)
        if gyro_rate is not None and gyro_rate != rec.rate:
            gyro = resample_poly(gyro, int(gyro_rate), int(rec.rate), axis=0)
        files["Gyroscope"] = gyro
    for k, (name, xyz) in enumerate(files.items()):
        rate = gyro_rate if name == "Gyroscope" and gyro_rate else rec.rate
        offset = 0.0031 * k  # each sensor's first event comes a few ms after the previous one's
        seconds = clock(len(xyz), rate, 0.21677 + offset, jitter, seed + k)
        ns = start_ns + np.round(seconds * 1e9).astype(np.int64)
        lines = ["time,seconds_elapsed,z,y,x"]
        lines += [
            f"{n},{s!r},{z!r},{y!r},{x!r}" for n, s, (x, y, z) in zip(ns.tolist(), seconds.tolist(), xyz.tolist())
        ]
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    (folder / "Metadata.csv").write_text(
        "version,device name,recording epoch time,recording time,recording timezone,platform,appVersion,device id,"
        f"sensors,sampleRateMs,standardisation,platform version\n3,Pixel 7,{start_ns // 10**6},2024-06-10_14-45-36,"
        f"Europe/Zurich,{platform},1.36.0,abc123,{'|'.join(files)},{1000 / rec.rate:g},false,14\n"
    )
    return folder


def wisdm(recordings, path: Path, quirks: bool = True, seed: int = 0) -> Path:
    """WISDM v1.1 raw text of HAPT ``recordings`` (resampled to 20 Hz, acc only, m/s^2), one line per
    sample, the user's number from the recording's subject; each labelled stretch becomes a run of
    lines (unlabelled samples are left out, as WISDM has none), on a clock of nanoseconds of uptime.
    ``quirks``: a zero timestamp, a record cut short (``x,y,;``), two records on one line, no final ';'."""
    rng = np.random.default_rng(seed)
    lines: list[str] = []
    uptime = 49_105_962_326_000
    for rec in recordings:
        low = rec.resampled(20.0)
        names = low.label_names
        t = uptime + np.round(clock(len(low), 20.0, 0.0, 0.02, seed) * 1e9).astype(np.int64)
        uptime = int(t[-1]) + 7_000_000_000
        for i in range(len(low)):
            if not names[i]:
                continue
            x, y, z = (float(v) * G for v in low.samples[i, :3])
            lines.append(f"{rec.subject},{HAPT_TO_WISDM[names[i]]},{t[i]},{x:.8g},{y:.8g},{z:.8g};")
    if quirks and len(lines) > 100:
        picks = sorted(rng.choice(np.arange(10, len(lines) - 10), 4, replace=False).tolist())
        user, activity, _, *_ = lines[picks[0]].split(",")
        lines[picks[0]] = ",".join([user, activity, "0", *lines[picks[0]].split(",")[3:]])  # a zero timestamp
        lines[picks[1]] = ",".join(lines[picks[1]].split(",")[:5]) + ",;"  # z missing
        lines[picks[2]] = lines[picks[2]] + lines.pop(picks[2] + 1)  # two records on one line
        lines[picks[3]] = lines[picks[3]].rstrip(";")  # no final ';'
    path.write_text("\n".join(lines) + "\n")
    return path


def piece(rec, first: int, n: int):
    """Samples ``first`` .. ``first + n`` of a recording."""
    labels = None if rec.labels is None else rec.labels[first : first + n]
    return replace(rec, samples=rec.samples[first : first + n], labels=labels)

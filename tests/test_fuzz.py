"""A fuzz test of what a user hands harlite: random mutations (fixed seed) of a bundle's manifest.json and
of a CSV recording, replayed with ``harlite simulate`` in-process. Every case must end with exit 0, 1 or 2,
no traceback and no internal error, and write nothing outside ``--out``."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from harlite.bundle.manifest import MANIFEST
from harlite.cli import main

SEED = 13
CASES = 250  # of each kind
STRANGE = [None, True, -1, 0, 2**63, 1e308, -1e-300, 3.5, "", "x" * 300, "../../etc/passwd", "/dev/zero",
           "a\nb", "#error", "??=", "*/", [], {}, [1, 2], {"a": 1}, "WALKING", 128, "int8"]  # fmt: skip


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into a JSON tree."""
    found = [prefix]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


def mutate_manifest(manifest: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``manifest`` with one to three random edits: a value replaced, a key or item removed, a list cut or
    doubled, a string altered."""
    manifest = json.loads(json.dumps(manifest))
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_paths(manifest)[1:])
        parent = manifest
        for key in path[:-1]:
            parent = parent[key]
        key, value, op = path[-1], parent[path[-1]], rng.randrange(5)
        if op == 0:
            parent[key] = rng.choice(STRANGE)
        elif op == 1 and isinstance(parent, dict):
            del parent[key]
        elif op == 2 and isinstance(value, list):
            parent[key] = value[: rng.randrange(len(value) + 1)] if rng.random() < 0.5 else value + value
        elif op == 3 and isinstance(value, str):
            i = rng.randrange(len(value) + 1)
            parent[key] = value[:i] + rng.choice(["\x00", "\n", "é", "/..", '"', "\u202e", "9"]) + value[i:]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parent[key] = value * rng.choice([-1, 0, 1e-9, 1e9, 1.5])
        else:
            parent[key] = rng.choice(STRANGE)
    return manifest


def mutate_csv(data: bytes, rng: random.Random) -> bytes:
    """``data`` with one to three random edits: bytes flipped, lines dropped, doubled or swapped, garbage,
    a cut, a huge or non-finite number, a column renamed."""
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 3)):
        i, op = rng.randrange(len(lines)), rng.randrange(8)
        if op == 0:
            line = bytearray(lines[i])
            if line:
                line[rng.randrange(len(line))] = rng.randrange(256)
            lines[i] = bytes(line)
        elif op == 1:
            del lines[i : i + rng.randint(1, 200)]
        elif op == 2:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 3:
            lines[i] = rng.choice([b"garbage", b"1,2", b"nan,nan,nan,nan,nan,nan,nan,", b"\xff\xfe", b",,,,,,,"])
        elif op == 4:
            lines = lines[: max(1, i)]
        elif op == 5:
            fields = lines[i].split(b",")
            fields[rng.randrange(len(fields))] = rng.choice([b"1e30", b"-1e300", b"inf", b"1e999", b"0x10", b""])
            lines[i] = b",".join(fields)
        elif op == 6:
            lines[0] = lines[0].replace(rng.choice([b"acc_x", b"gyro_z", b"label", b"time_s"]), b"what")
        else:
            lines[i], lines[-i] = lines[-i], lines[i]
        if not lines:
            lines = [b""]
    return b"\n".join(lines)


def _tree(root: Path, out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if out not in p.parents and p != out}


def test_random_manifests_and_recordings_end_in_0_1_or_2_and_write_only_into_out(
    tiny_bundle: Path, tmp_path: Path, harlite_cache: Path
) -> None:
    from harlite.data.hapt import load_hapt
    from harlite.data.recordings import write_csv

    rng = random.Random(SEED)
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    good = json.loads((bundle / MANIFEST).read_text())
    rec = load_hapt(["4"])[0]
    csv = write_csv(replace(rec, samples=rec.samples[:800], labels=rec.labels[:800]), tmp_path / "walk.csv")
    clean = csv.read_bytes()
    runner, out, codes, started = CliRunner(), tmp_path / "out", [], time.perf_counter()
    for case in range(2 * CASES):
        if case < CASES:
            (bundle / MANIFEST).write_text(json.dumps(mutate_manifest(good, rng)))
            csv.write_bytes(clean)
        else:
            (bundle / MANIFEST).write_text(json.dumps(good))
            csv.write_bytes(mutate_csv(clean, rng))
        before = _tree(tmp_path, out)
        result = runner.invoke(main, ["simulate", str(bundle), str(csv), "--runtime", "litert", "--out", str(out),
                                      "--force"])  # fmt: skip
        where = f"case {case}: {result.output[-500:]}"
        assert result.exit_code in (0, 1, 2), where
        assert "Traceback" not in result.output and "internal error" not in result.output, where
        assert _tree(tmp_path, out) == before, where
        codes.append(result.exit_code)
    seconds = time.perf_counter() - started
    print(f"fuzz: {len(codes)} cases in {seconds:.1f} s; exits {sorted((c, codes.count(c)) for c in set(codes))}")
    assert codes.count(0) > 10 and codes.count(2) > 100  # both paths were exercised


# ---- dataset.json and the capture line protocol (issue 22) -------------------------------------------

DATASET_JSON = {"units": {"acc": "g", "gyro": "rad/s"}, "labels": ["wave", "brush", "rest"], "merge": {"jog": "wave"},
                "ignore": ["pause"], "columns": {"time": "time_s", "acc_x": "acc_x", "acc_y": "acc_y", "acc_z": "acc_z",
                "gyro_x": "gyro_x", "gyro_y": "gyro_y", "gyro_z": "gyro_z", "label": "label"}, "time_unit": "s",
                "csv": {"delimiter": ",", "decimal": ".", "encoding": "utf-8"}, "gravity": "included"}  # fmt: skip


def test_random_dataset_json_ends_in_0_1_or_2_and_writes_nothing(tmp_path: Path, harlite_cache: Path) -> None:
    from test_datasets import make_dataset

    rng = random.Random(SEED)
    root = make_dataset(tmp_path / "ds", range(3), 50.0, seconds_per_label=6.0)
    runner, codes, started = CliRunner(), [], time.perf_counter()
    for case in range(CASES // 2):
        doc = mutate_manifest(DATASET_JSON, rng)
        (root / "dataset.json").write_text(json.dumps(doc) if case % 10 else json.dumps(doc)[: rng.randrange(80)])
        before = _tree(tmp_path, tmp_path / "none")
        result = runner.invoke(main, ["data", "info", "--data", str(root)])
        where = f"case {case}: {json.dumps(doc)[:300]} -> {result.output[-400:]}"
        assert result.exit_code in (0, 1, 2), where
        assert "Traceback" not in result.output and "internal error" not in result.output, where
        assert _tree(tmp_path, tmp_path / "none") == before, where
        codes.append(result.exit_code)
    print(f"fuzz dataset.json: {len(codes)} cases in {time.perf_counter() - started:.1f} s; "
          f"exits {sorted((c, codes.count(c)) for c in set(codes))}")  # fmt: skip
    assert codes.count(0) > 5 and codes.count(2) > 50


BOARD_STRANGE = [b"", b"#", b"# harlite format=1 rate_hz=nan sensors=acc,gyro", b"# harlite format=99", b"time_s,acc_x",
                 b"time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z", b"# pred,pred_smoothed=\x1b[2J,p=1",
                 b"# error: \x1b]0;t\x07", b"# gap: 5 samples lost", "# pred,pred_smoothed=Zähne,p=0.5".encode(),
                 b"\xff\xfe\x00", b"0.000000,nan,inf,-inf,1e999,0,0", b"9" * 5000, b"-1.000000,0,0,0,0,0,0"]  # fmt: skip


def mutate_board(lines: list[bytes], rng: random.Random) -> list[bytes]:
    """A board's lines with one to four edits: a line replaced, dropped, doubled or moved, bytes flipped,
    a banner field changed, time going back."""
    lines = list(lines)
    for _ in range(rng.randint(1, 4)):
        i, op = rng.randrange(len(lines)), rng.randrange(6)
        if op == 0:
            lines[i] = rng.choice(BOARD_STRANGE)
        elif op == 1:
            del lines[i : i + rng.randint(1, 30)]
        elif op == 2:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 3 and lines[i]:
            line = bytearray(lines[i])
            line[rng.randrange(len(line))] = rng.randrange(256)
            lines[i] = bytes(line)
        elif op == 4:
            field = rng.choice([b"rate_hz=50", b"sensors=acc,gyro", b"format=1", b"labels=walk,sit"])
            lines[0] = lines[0].replace(
                field, field.split(b"=")[0] + b"=" + rng.choice([b"0", b"-1", b"x", b"", b"1e9"])
            )
        else:
            lines.insert(i, lines[max(2, i - rng.randint(1, 20))] if len(lines) > 3 else b"")
        if not lines:
            lines = [b""]
    return lines


def test_random_board_lines_end_in_0_1_or_2_and_write_only_into_out(tmp_path: Path) -> None:
    from test_capture import FakeBoard

    rng = random.Random(SEED)
    clean = [b"# harlite format=1 firmware=fuzz rate_hz=50 sensors=acc,gyro labels=walk,sit",
             b"time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z"]  # fmt: skip
    clean += [f"{i / 50:.6f},0.0{i % 9}0000000,0.020000000,0.980000000,0.100000000,-0.200000000,0.300000000".encode()
              for i in range(120)]  # fmt: skip
    runner, codes, started = CliRunner(), [], time.perf_counter()
    for case in range(CASES // 3):
        lines = mutate_board(clean, rng)
        work = tmp_path / f"case{case}"
        work.mkdir()
        board = FakeBoard(work)
        out = work / "data"

        def feed(board: FakeBoard = board, lines: list[bytes] = lines) -> None:
            with contextlib.suppress(BaseException):  # capture may stop reading at any line: so be it
                board.wait_open(10)
                board.send_lines(lines)
                time.sleep(0.1)
                board.unplug()  # the board goes away: capture ends

        try:
            board.thread = threading.Thread(target=feed, daemon=True)
            board.thread.start()
            before = _tree(work, out)
            result = runner.invoke(main, ["capture", "--port", board.port, "--label", "walk", "--out", str(out),
                                          "--wait", "0.5", "--seconds", "2"])  # fmt: skip
        finally:
            board.close()
        where = f"case {case}: {lines[:3]} ... -> {result.output[-400:]}"
        assert result.exit_code in (0, 1, 2), where
        assert "Traceback" not in result.output and "internal error" not in result.output, where
        assert _tree(work, out) == {k: v for k, v in before.items() if "ttyBOARD" not in k}, where
        for path in out.rglob("*") if out.exists() else []:
            assert not path.name.startswith(".") or path.is_dir(), where  # nothing left half-written
        codes.append(result.exit_code)
    print(f"fuzz capture: {len(codes)} cases in {time.perf_counter() - started:.1f} s; "
          f"exits {sorted((c, codes.count(c)) for c in set(codes))}")  # fmt: skip
    assert codes.count(0) > 10 and codes.count(2) > 10

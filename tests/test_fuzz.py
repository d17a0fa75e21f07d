"""A fuzz test of what a user hands harlite: random mutations (fixed seed) of a bundle's manifest.json and
of a CSV recording, replayed with ``harlite simulate`` in-process. Every case must end with exit 0, 1 or 2,
no traceback and no internal error, and write nothing outside ``--out``."""

from __future__ import annotations

import json
import random
import shutil
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

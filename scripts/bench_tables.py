"""The figures README.md, firmware/README.md and docs/phone.md quote, from benchmarks/bench.json (``harlite bench``).

Each table lies between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; this rewrites them from the
JSON, or with --check only says which differ (tests/test_bench_tables.py runs that). scripts/bench.sh
measures and rewrites in one go.

    python scripts/bench_tables.py [--check] [--bench benchmarks/bench.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BLOCKS = {"README.md": ("released", "seeds", "cores", "web", "scale_summary"), "firmware/README.md": ("runtimes",),
          "docs/phone.md": ("web",), "docs/scale.md": ("scale",)}
CORE_NAMES = {"cortex-m0": "Cortex-M0", "cortex-m4": "Cortex-M4F", "cortex-m7": "Cortex-M7", "cortex-m33": "Cortex-M33",
              "rv32imc": "RV32IMC"}  # fmt: skip


def _b(n: float) -> str:
    return f"{int(n):,} B"


def _m(n: float) -> str:
    return f"{n / 1e6:.2f} M"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def released(bench: dict[str, Any]) -> str:
    b, fw, sim = bench["bundle"], bench["firmware"], bench["simulate"]
    metrics, acc, pairs = b["released_metrics"], b["accuracy"], b["max_abs_diff"]
    chosen = "qat_int8" if metrics["int8"]["accuracy"] == metrics["qat_int8"]["accuracy"] else "ptq_int8"
    ptq, qat = (_pct(metrics[k]["accuracy"]) for k in ("ptq_int8", "qat_int8"))
    ptq, qat = (f"**{v}**" if k == chosen else v for k, v in (("ptq_int8", ptq), ("qat_int8", qat)))
    same = "identical outputs" if pairs.get("c|tflm") == 0 else f"outputs within {pairs.get('c|tflm')}"
    drop = 100 * (acc["keras"] - acc["tflm"])
    tflm, m4, core = b["tflm"], fw["cores"]["cortex-m4"], fw["core"]
    rows = [
        ("float accuracy (Keras)", f"{_pct(acc['keras'])} (macro-F1 {metrics['float']['macro_f1']:.3f})"),
        ("int8 accuracy (LiteRT): PTQ / QAT (kept on validation)", f"{ptq} / {qat}"),
        (f"int8 accuracy in TFLite Micro and in the C engine ({same}); TFLM top-1 agreement with LiteRT int8",
         f"{_pct(acc['tflm'])} ({drop:.2f} points under float); {_pct(b['agreement']['tflm|litert-int8'])}"),
        ("int8 model (flash) / float16 / float32", " / ".join(_b(b["bytes"][k]) for k in ("int8", "float16", "float32"))),
        ("parameters; multiply-accumulates per window", f"{b['model']['params']:,}; {b['model']['macs_per_window']:,}"),
        (f"TFLM tensor arena (measured minimum {_b(tflm['arena_min_bytes'])} + margin)", _b(tflm["arena_bytes"])),
        ("C core on Cortex-M4 (`-Os`; front end, smoothing and the unknown decision): flash / RAM", f"{_b(core['flash_bytes'])} / {_b(core['ram_bytes'])}"),
        ("the firmware's per-sample path with the C engine on Cortex-M4 (QEMU, `-Os`): flash / RAM with stack / "
         "instructions per window (other cores below)",
         f"{_b(m4['flash_bytes'])} / {_b(m4['ram_bytes'])} / {_m(m4['instructions_per_window'])}"),
    ]  # fmt: skip
    if fw["tflm"].get("measured"):
        t = fw["tflm"]
        rows.append(("the same with the sketch's TFLM (the Arduino library) instead",
                     f"{_b(t['flash_bytes'])} / {_b(t['ram_bytes'])} / {_m(t['instructions_per_window'])}"))  # fmt: skip
    rows.append(("replay of the test subjects' continuous recordings (TFLM)",
                 f"{_pct(sim['accuracy_pure_windows'])} on pure windows, "
                 f"~{round(sim['latency']['windows_per_s'], -1):,.0f} windows/s on the host"))  # fmt: skip
    return "| | value |\n| --- | --- |\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def cores(bench: dict[str, Any]) -> str:
    rows = ["| core (QEMU machine) | flash | RAM: static + stack | instructions per window (of which the model) | "
            "at 64 MHz |\n", "| --- | --- | --- | --- | --- |\n"]  # fmt: skip
    for name, c in bench["firmware"]["cores"].items():
        machine = c["machine"].split("-machine ")[1].split()[0]
        rows.append(f"| {CORE_NAMES.get(name, name)} (`{machine}`) | {_b(c['flash_bytes'])} | "
                    f"{c['static_ram_bytes']:,} + {c['stack_bytes']:,} = {_b(c['ram_bytes'])} | "
                    f"{c['instructions_per_window']:,} ({c['instructions']['model']:,}) | "
                    f"{c['instructions_per_window'] / 64e3:.0f} ms |\n")  # fmt: skip
    return "".join(rows)


def runtimes(bench: dict[str, Any]) -> str:
    fw = bench["firmware"]
    m4, t, limits = fw["cores"]["cortex-m4"], fw["tflm"], fw["limits"]
    engine = [f"{_b(m4['flash_bytes'])} (limit {limits['flash_bytes'] // 1024} KiB)",
              f"{m4['static_ram_bytes']:,} + {m4['stack_bytes']:,} = {_b(m4['ram_bytes'])} (limit "
              f"{limits['ram_bytes'] // 1024} KiB)",
              f"{m4['instructions_per_window']:,} (the engine: {m4['instructions']['model']:,}) (limit "
              f"{limits['instructions_per_window'] / 1e6:g} M)",
              f"about {m4['instructions_per_window'] / 64e3:.0f} ms a window"]  # fmt: skip
    tflm = ([_b(t["flash_bytes"]), f"{t['static_ram_bytes']:,} + {t['stack_bytes']:,} = {_b(t['ram_bytes'])}",
             f"{t['instructions_per_window']:,} (the model's `Reset()` + `Invoke()`: {t['instructions']['model']:,})",
             f"about {t['instructions_per_window'] / 64e3:.0f} ms a window"]
            if t.get("measured") else ["not measured"] * 4)  # fmt: skip
    names = ["flash", "RAM, static + stack", "instructions per window", "at 64 MHz, one instruction a cycle"]
    return ("| | TFLite Micro (default) | harlite's C engine (`HARLITE_ENGINE`) |\n| --- | --- | --- |\n"
            + "".join(f"| {n} | {a} | {b} |\n" for n, a, b in zip(names, tflm, engine)))


def web(bench: dict[str, Any]) -> str:
    w = bench["web"]
    js, engine = w["harlite_js"], w["host_c_engine_ms_per_window"]

    def pair(figure: dict[str, float], digits: int, unit: str = "") -> str:
        return f"{figure['best']:,.{digits}f}{unit} (median {figure['median']:,.{digits}f})"

    rows = [
        ("measured in", f"headless {w['chromium']}; {w['recording']} ({w['windows']} windows); the best of "
         f"{w['runs']} runs (their median)"),
        ("the export: all its files / `harlite.wasm` (clang, `-O2`, wasm-ld, no imports)",
         f"{_b(w['export_bytes'])} / {_b(w['wasm_bytes'])}"),
        ("predictions identical to `harlite simulate --runtime c` (harlite.js and the page)",
         "yes" if w["identical_predictions"] else "**no**"),
        ("whole path per window through `harlite.js` in WebAssembly (resampler, front end, C engine, smoothing)",
         pair(js["ms_per_window"], 2, " ms")),
        ("the C engine alone on the host, as `simulate --runtime c` builds it (gcc `-O2`)", pair(engine, 2, " ms")),
        ("samples/s through `harlite.js` (`push` with objects, as a page calls it)", pair(js["samples_per_s"], 0)),
        ("devicemotion events/s through the page's handler (units, push, display)",
         pair(w["page_devicemotion_events_per_s"], 0)),
    ]  # fmt: skip
    return "| | value |\n| --- | --- |\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def _mb(run: dict[str, Any]) -> str:
    return f"{run['peak_rss_mb']:,.0f} MB" if "peak_rss_mb" in run else "failed"


def _speed(run: dict[str, Any]) -> str:
    return f"{run['windows_per_s']:,.0f}" if "windows_per_s" in run else "failed"


def scale(bench: dict[str, Any]) -> str:
    if "scale" not in bench:
        return "Not measured yet: `harlite bench scale --json benchmarks/bench.json --force`.\n"
    s = bench["scale"]
    rows = ["| data | recordings | training windows | windows read | peak memory, 1 worker | windows/s, 1 worker | "
            "peak memory, 2 workers (the larger) | windows/s, 2 workers |\n",
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n"]  # fmt: skip
    for size, row in s["sizes"].items():
        one, two = row.get("workers_1", {}), row.get("workers_2", {})
        rows.append(f"| {size} | {row['recordings']:,} | {one.get('train_windows', 0):,} | "
                    f"{'streamed' if one.get('input') == 'streamed' else 'in memory'} | {_mb(one)} | {_speed(one)} | "
                    f"{_mb(two)} | {_speed(two)} |\n")  # fmt: skip
    return "".join(rows) + (f"\nPeak memory from 1x to 16x: {s['peak_rss_growth_workers_1']:.2f}x with one worker, "
                            f"{s.get('peak_rss_growth_workers_2', float('nan')):.2f}x with two (target: at most "
                            f"{s['target_growth']:g}x); measured {s['date']}.\n")  # fmt: skip


def scale_summary(bench: dict[str, Any]) -> str:
    if "scale" not in bench:
        return ""
    s = bench["scale"]
    one, big = s["sizes"]["1x"]["workers_1"], s["sizes"]["16x"]["workers_1"]
    return (f"One training epoch on 16x HAPT ({big['train_windows']:,} windows) peaked at {_mb(big)} of resident "
            f"memory, {s['peak_rss_growth_workers_1']:.2f}x the {_mb(one)} of 1x (`harlite bench scale`, "
            f"benchmarks/bench.json, {s['date'][:10]}, {bench['machine']['cpus']} CPUs).\n")


def seeds(bench: dict[str, Any]) -> str:
    t = bench["train"]
    s = t["models"]["cnn_lstm"]["summary"]

    def spread(key: str) -> str:
        f = s[key]
        return f"{100 * f['mean']:.2f}% (sd {100 * f['std']:.2f}; {100 * f['min']:.2f}-{100 * f['max']:.2f})"

    return (f"`harlite bench train --models cnn_lstm --seeds {len(t['seeds'])}` (seeds "
            f"{', '.join(map(str, t['seeds']))}; {t['date'][:10]}, {bench['machine']['cpus']} CPUs, this code) on the "
            f"2,874 test windows: float {spread('float_accuracy')}, int8 as kept (PTQ or QAT, in LiteRT) "
            f"{spread('int8_accuracy')}; train and QAT {s['train_qat_seconds']['mean'] / 60:.1f} minutes a seed.\n")


RENDER = {"released": released, "seeds": seeds, "cores": cores, "runtimes": runtimes, "web": web, "scale": scale,
          "scale_summary": scale_summary}


def update(root: Path, bench: dict[str, Any], check: bool = False) -> list[str]:
    """Rewrite (or with ``check`` only compare) every block; returns the blocks that differed."""
    differing = []
    for file, names in BLOCKS.items():
        path = root / file
        text = original = path.read_text()
        for name in names:
            pattern = re.compile(rf"(<!-- bench:{name} -->\n)(.*?)(<!-- /bench:{name} -->)", re.DOTALL)
            match = pattern.search(text)
            if match is None:
                raise SystemExit(f"{file}: no <!-- bench:{name} --> block")
            try:
                rendered = RENDER[name](bench)
            except KeyError as missing:
                raise SystemExit(f"{file}: the {name} table needs bench.json's {missing} figures: run harlite bench") from None
            if match.group(2) != rendered:
                differing.append(f"{file}:{name}")
                text = text[: match.start(2)] + rendered + text[match.end(2) :]
        if text != original and not check:
            path.write_text(text)
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say which blocks differ (exit 1 if any)")
    parser.add_argument("--bench", type=Path, default=REPO / "benchmarks" / "bench.json")
    args = parser.parse_args()
    differing = update(REPO, json.loads(args.bench.read_text()), args.check)
    print(("differ: " if args.check else "rewrote: ") + (", ".join(differing) or "nothing"))
    sys.exit(1 if args.check and differing else 0)


if __name__ == "__main__":
    main()

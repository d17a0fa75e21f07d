"""The build's report.md: accuracy, parity, size, latency, pictures and what to do next."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from harlite.io.files import atomic_write_text

# Pictures the report shows: (file written by a stage, name beside the report, caption).
PICTURES = (
    ("train/learning_curves.png", "report_learning_curves.png", "Learning curves of the float model"),
    ("train/qat/confusion_int8.png", "report_confusion_int8.png", "Confusion matrix of the int8 model (test split)"),
    ("simulate/timeline.png", "report_timeline.png", "A test recording replayed through the firmware path"),
)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _accuracy_table(qat: dict[str, Any]) -> list[str]:
    rows = ["| model | test accuracy | macro-F1 |", "| --- | --- | --- |"]
    names = {"float": "float (Keras)", "ptq_int8": "PTQ int8", "qat_int8": "QAT int8"}
    for key, name in names.items():
        m = qat["test"].get(key)
        if m:
            rows.append(f"| {name} | {_pct(m['accuracy'])} | {m['macro_f1']:.4f} |")
    rows += ["", f"Kept: **{qat['chosen'].upper()}** ({qat['reason']})."]
    return rows


def _per_class_table(qat: dict[str, Any]) -> list[str]:
    """Precision and recall of the kept int8 model per class, so that a weak class shows."""
    per_class = qat["test"]["int8"]["per_class"]
    rows = ["| class | precision | recall | F1 | test windows |", "| --- | --- | --- | --- | --- |"]
    for name, m in per_class.items():
        rows.append(f"| {name} | {_pct(m['precision'])} | {_pct(m['recall'])} | {m['f1']:.3f} | {m['support']} |")
    weak = [name for name, m in per_class.items() if m["support"] and m["recall"] < 0.8]
    if weak:
        rows += ["", f"Weak: {', '.join(weak)} (recall under 80%): more or cleaner recordings of these help most."]
    return rows


def _data_lines(data: dict[str, Any], config: dict[str, Any]) -> list[str]:
    source = (
        "the embedded UCI HAPT recordings (UCI HAR protocol)" if data["source"] == "hapt" else f"`{data['source']}`"
    )
    split = {"subject": "by subject", "recording": "by recording (fewer than 3 subjects)",
             "time": "by time (the last 20% of every recording is test)"}[data["split"]]  # fmt: skip
    test = config["data"].get("test_data")
    lines = [
        f"Built by `harlite build` (model `{config['model']}`, seed {config['seed']}"
        f"{', quick smoke run' if config['quick'] else ''}) on {source}: labels {', '.join(data['labels'])}; "
        f"sensors {', '.join(data['raw_channels'])} at {data['rate_hz']:g} Hz; {data['windows']:,} labelled windows, "
        + (f"test split from `{test}`." if test else f"split {split}, test {', '.join(data['groups']['test'])}."),
    ]
    lines += [f"- note: {w}" for w in data.get("warnings", [])]
    return lines


def _size_table(convert: dict[str, Any], simulate: dict[str, Any]) -> list[str]:
    art, model, tflm = convert["artifacts"], convert["model"], convert.get("tflm", {})
    latency = simulate.get("latency", {})
    rows = [
        "| figure | value |",
        "| --- | --- |",
        f"| parameters | {model['params']:,} |",
        f"| multiply-accumulates per window | {model['macs_per_window']:,} |",
        f"| int8 `.tflite` (flash) | {art['int8']['bytes']:,} B |",
        f"| float16 / float32 `.tflite` (phones) | {art['float16']['bytes']:,} B / {art['float32']['bytes']:,} B |",
    ]
    if tflm:
        rows.append(f"| TFLM tensor arena (measured, margin included) | {tflm['arena_bytes']:,} B |")
    if latency:
        rows.append(
            f"| host latency per window, TFLM (mean / p99) | {latency['invoke_ms']['mean']:.3f} ms / "
            f"{latency['invoke_ms']['p99']:.3f} ms |"
        )
        rows.append(f"| simulator throughput | {latency['windows_per_s']:.0f} windows/s |")
    return rows


def _parity_table(parity: dict[str, Any]) -> list[str]:
    rows = ["| pair | top-1 agreement | max abs diff |", "| --- | --- | --- |"]
    for key, p in parity["pairs"].items():
        rows.append(f"| {key.replace('|', ' vs ')} | {_pct(p['agreement'])} | {p['max_abs_diff']:.4f} |")
    verdict = "passed" if parity["passed"] else "FAILED"
    rows += ["", f"Parity {verdict} on {parity['windows']} test windows:"]
    rows += [f"- {'ok' if c['passed'] else 'FAILED'}: {c['message']}" for c in parity["checks"]]
    return rows


def _simulate_lines(simulate: dict[str, Any]) -> list[str]:
    metrics, counts = simulate.get("metrics") or {}, simulate.get("windows", {})
    lines = [f"Replayed {len(simulate['recordings'])} recordings sample by sample ({simulate['runtime']})."]
    if metrics:
        lines.append(
            f"Accuracy on windows of one activity: {_pct(metrics['raw']['accuracy'])} "
            f"(smoothed `{simulate['smoothing']}`: {_pct(metrics['smoothed']['accuracy'])})."
        )
    if counts:
        lines.append("Windows: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")
    return lines


def render(results: dict[str, Any], pictures: tuple[tuple[str, str], ...] = ()) -> str:
    """report.md's text for the results gathered by ``harlite build``, showing ``(file, caption)`` pictures."""
    config, convert = results["config"], results["convert"]
    simulate = results.get("simulate", {})
    seconds = results.get("seconds", {})
    lines = [
        f"# harlite report: {convert['model']['architecture']}",
        "",
        *_data_lines(results["data"], config),
        "",
        "## Accuracy",
        *_accuracy_table(results["qat"]),
        "",
        "Per class (int8, test split):",
        "",
        *_per_class_table(results["qat"]),
        "",
        "## Size and speed",
        *_size_table(convert, simulate),
        "",
        "## Parity: Keras, LiteRT, TFLite Micro and the C engine",
        *_parity_table(results["parity"]),
        "",
        "## Replay",
        *_simulate_lines(simulate),
        "",
    ]
    for name, caption in pictures:
        lines += [f"![{caption}]({name})", f"*{caption}*", ""]
    if seconds:
        lines += ["## Time", ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + " (2-core host)", ""]
    lines += [
        "## Next",
        f"- Flash it: `harlite convert {results['bundle']} --firmware firmware/arduino/harlite_har` refreshes the",
        "  sketch's model files; then follow firmware/README.md (Arduino IDE or PlatformIO).",
        "- Replay your own recording (CSV: `time_s,acc_x,acc_y,acc_z[,gyro_x,gyro_y,gyro_z][,label]`, g and rad/s):",
        f"  `harlite simulate {results['bundle']} my_walk.csv --plot my_walk.png`.",
        "- A phone app feeds `model_float16.tflite` or `model_int8.tflite` with LiteRT: see README.md.",
    ]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | Path, results: dict[str, Any]) -> list[Path]:
    """Write ``run_dir/report.md`` and copy its pictures beside it; returns the files written."""
    run_dir = Path(run_dir)
    shown = tuple((name, caption) for source, name, caption in PICTURES if (run_dir / source).exists())
    for source, name, _ in PICTURES:
        if (run_dir / source).exists():
            shutil.copyfile(run_dir / source, run_dir / name)
    page = atomic_write_text(run_dir / "report.md", render(results, shown))
    return [run_dir / name for name, _ in shown] + [page]

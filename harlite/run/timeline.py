"""What ``harlite simulate`` writes: the timeline (CSV and JSON, one row per window), a picture of one
recording (acceleration with true, predicted and smoothed activities as coloured bands) and golden
vectors for the firmware's tests; ``run`` is the command."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.loader import load_bundle
from harlite.core.smoothing import parse_smoothing, smooth
from harlite.data.layout import Layout, Units
from harlite.data.recordings import Recording
from harlite.errors import HarliteError
from harlite.io.files import atomic_write_bytes, atomic_write_text, check_writable, is_within, write_json
from harlite.io.locks import folder_lock
from harlite.run.simulate import SimulationResult, bundle_subjects, load_recordings, simulate
from harlite.run.traces import PURE

GOLDEN_SMOOTHINGS = (
    "none",
    "majority:3",
    "majority:4",
    "ema:0.5",
    "ema:0.3 dwell:2 hysteresis:0.1",
    "majority:3 dwell:3",
)
GOLDEN_FILES = (
    "raw_f32.bin",
    "input_int8.bin",
    "output_int8.bin",
    "golden.json",
    "harlite_model_config.h",
    "features_int8.bin",
)


def run(
    bundle: str | Path,
    paths: list[str | Path] = (),
    dataset: str | None = None,
    subjects: list[str] | tuple[str, ...] | None = None,
    split: str | None = None,
    recordings: list[Recording] | None = None,
    runtime: str = "tflm",
    smoothing: str | None = None,
    out: str | Path | None = None,
    plot: str | Path | None = None,
    golden: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    rotation: str | None = None,
    unknown: bool = True,
    units: Units = Units(),
    layout: Layout | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """What ``harlite simulate`` does: load, replay, then write the timeline, plot and golden vectors.
    ``smoothing`` None uses the bundle's calibrated post-processing; ``rotation`` and ``unknown`` are
    ``harlite.run.simulate.simulate``'s.

    The recordings are the CSV files ``paths``, a ``dataset``'s (with ``subjects``, or the bundle's own
    ``split``: test or train) and ``recordings`` already loaded; ``units`` and the column mapping ``layout`` say how
    to read the files; nothing is written into a dataset folder replayed (it would be read as a recording later). The folders written (``out``, ``golden``, the plot's) are locked for the whole run,
    so a second harlite writing there is refused. Returns the summary with the written files under ``files``.
    """
    bundle = load_bundle(bundle)
    if split is not None and subjects is not None:
        raise HarliteError("give --subjects or --split, not both.")
    if split is not None:
        own, subjects = bundle_subjects(bundle, split)
        dataset = dataset or own
    elif subjects is not None and dataset is None:
        dataset = bundle_subjects(bundle, "test")[0]
    smoothing = None if smoothing is None else parse_smoothing(smoothing)
    say = log or (lambda message: None)
    if golden is not None and runtime not in ("tflm", "c"):
        raise HarliteError("--dump-golden records the board's outputs: use it with --runtime tflm (the default) or c.")
    if golden is not None:
        bundle.read("tflm_config")  # golden vectors carry the bundle's config header: fail before the replay
    folders = [Path(out)] if out is not None else []
    folders += [Path(golden)] if golden is not None else []
    folders += [Path(plot).parent] if plot is not None else []
    for folder in folders if dataset not in (None, "hapt") else []:
        if is_within(folder, Path(dataset)):
            raise HarliteError(f"{folder} lies inside the dataset {dataset}: its files would be read as recordings "
                               "later; write them elsewhere.")  # fmt: skip
    with contextlib.ExitStack() as locks:
        for folder in dict.fromkeys(folders):
            locks.enter_context(folder_lock(folder))
        targets = [Path(out) / name for name in ("timeline.csv", "timeline.json")] if out is not None else []
        targets += [Path(golden) / name for name in GOLDEN_FILES] if golden is not None else []
        for target in targets + ([plot] if plot is not None else []):
            check_writable(target, force)
        given = list(recordings or [])
        wanted_data = paths or dataset or not given
        recordings = given + (load_recordings(paths, dataset, subjects, bundle.manifest, units, layout)
                              if wanted_data else [])  # fmt: skip
        result = simulate(bundle, recordings, runtime, smoothing, log, rotation, unknown, jobs=jobs)
        files = write_timeline(result, out, force) if out is not None else []
        # The plot and the golden vectors show one recording: the first that gave a window.
        wanted = " and ".join(name for name, path in (("plot", plot), ("golden vectors", golden)) if path is not None)
        shown = next((i for i, tr in enumerate(result.traces) if len(tr.starts)), None)
        if wanted and shown is None:
            say(f"warning: no recording gave a window, so there are no {wanted}")
        elif wanted:
            files += [plot_timeline(result, plot, shown, force)] if plot is not None else []
            files += dump_golden(result, golden, force, shown) if golden is not None else []
            if len(recordings) > 1:
                say(f"{wanted}: {recordings[shown].source}, the first of {len(recordings)} recordings")
    return {**result.summary(), "files": [str(f) for f in files]}


def write_timeline(result: SimulationResult, out: str | Path, force: bool = False) -> list[Path]:
    """Write ``out/timeline.csv`` (one row per window) and ``out/timeline.json`` (summary and rows)."""
    out = Path(out)
    csv_path, json_path = (check_writable(out / name, force) for name in ("timeline.csv", "timeline.json"))
    rows = result.rows()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=result.columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    atomic_write_text(csv_path, buf.getvalue())
    write_json(json_path, {**result.summary(), "labels": list(result.labels), "columns": result.columns, "rows": rows})
    return [csv_path, json_path]


def dump_golden(result: SimulationResult, out: str | Path, force: bool = False, recording: int = 0) -> list[Path]:
    """Write firmware test vectors of one TFLM-replayed recording (docs/simulate.md, golden vectors).

    ``raw_f32.bin`` (n x 6 float32 LE), ``input_int8.bin`` (m x window x C), ``output_int8.bin``
    (m x classes), ``features_int8.bin`` (m x the model's other outputs, hidden vector and logits; empty
    without an unknown decision), ``golden.json`` (with each window's decision, ``classes`` = unknown) and
    a copy of the bundle's ``harlite_model_config.h``.
    """
    if result.runtime not in ("tflm", "c"):
        raise HarliteError("golden vectors hold the board's outputs: replay with --runtime tflm or c.")
    tr, bundle = result.traces[recording], result.bundle
    header = bundle.read("tflm_config")
    paths = [check_writable(Path(out) / name, force) for name in GOLDEN_FILES]
    golden = {
        "samples": len(tr.recording),
        "windows": len(tr.starts),
        "window": result.spec.window,
        "hop": result.spec.hop,
        "channels": len(result.spec.channels),
        "classes": len(result.labels),
        "source": tr.recording.source,
        "bundle": str(bundle.root),
        "model_sha256": bundle.entry("int8")["sha256"],
        "rate_hz": result.spec.rate_hz,
        "frontend_digest": result.spec.digest(),
        "labels": list(result.labels),
        "decisions": tr.raw.tolist(),
        "unknown": result.unknown is not None,
        # Reported labels of output_int8.bin and the decisions per post-processing, for the C smoother's tests.
        "smoothed": {str(parse_smoothing(s)): smooth(tr.probs, s, tr.raw).tolist() for s in _golden_smoothings(result)},
    }
    atomic_write_bytes(paths[0], np.ascontiguousarray(tr.recording.samples, dtype="<f4").tobytes())
    atomic_write_bytes(paths[1], np.ascontiguousarray(tr.inputs, dtype=np.int8).tobytes())
    atomic_write_bytes(paths[2], np.ascontiguousarray(tr.outputs, dtype=np.int8).tobytes())
    write_json(paths[3], golden)
    atomic_write_bytes(paths[4], header)
    features = tr.features if result.unknown is not None and tr.features is not None else np.zeros(0, np.int8)
    atomic_write_bytes(paths[5], np.ascontiguousarray(features, dtype=np.int8).tobytes())
    return paths


def _golden_smoothings(result: SimulationResult) -> list[str]:
    specs = [str(parse_smoothing(s)) for s in GOLDEN_SMOOTHINGS]
    return specs + ([str(result.smoothing)] if str(result.smoothing) not in specs else [])


# Samples without a label: light grey; windows reported unknown: dark grey.
NO_LABEL_COLOUR, UNKNOWN_COLOUR = "#dddddd", "#555555"


def class_colours(labels: tuple[str, ...]) -> list[str]:
    """A distinct colour per class, for any number of classes (a qualitative colour map)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return [to_hex(cmap(i % cmap.N)) for i in range(len(labels))]


def plot_timeline(result: SimulationResult, path: str | Path, recording: int = 0, force: bool = False) -> Path:
    """PNG of one recording: the acceleration, and true and predicted activities as coloured bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    path = check_writable(path, force)
    tr, spec = result.traces[recording], result.spec
    rec, rate = tr.recording, spec.rate_hz
    colours = class_colours(result.labels) + [UNKNOWN_COLOUR]

    def colour(label: int) -> str:
        return colours[label] if 0 <= label < len(colours) else NO_LABEL_COLOUR

    minutes = rec.duration_s > 300
    scale = rate * (60.0 if minutes else 1.0)  # samples per unit of the time axis

    fig, (ax_sig, ax_band) = plt.subplots(
        2, 1, sharex=True, figsize=(13, 5.6), dpi=110, gridspec_kw={"height_ratios": [2.0, 1.4], "hspace": 0.08}
    )
    t = np.arange(len(rec)) / scale
    for axis, line in zip("xyz", ("#000000", "#8c564b", "#9a9a9a")):
        ax_sig.plot(t, rec.samples[:, "xyz".index(axis)], color=line, lw=0.6, label=f"acc_{axis}")
    ax_sig.set_ylabel("acceleration (g)")
    ax_sig.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax_sig.grid(alpha=0.3)

    rows = []  # (name, starts, ends, colours), in samples
    if rec.labels is not None:
        edges = np.flatnonzero(np.diff(rec.labels)) + 1
        first = np.concatenate([[0], edges])
        rows.append(("true", first, np.append(edges, len(rec)), [colour(int(rec.labels[i])) for i in first]))
    centre_lo = tr.starts + (spec.window - spec.hop) / 2  # a window's prediction drawn over its middle hop
    shown = [("predicted", tr.raw)]
    if str(result.smoothing) != "none":
        shown.append((f"smoothed\n{result.smoothing}", tr.smoothed))
    for name, pred in shown:
        rows.append((name, centre_lo, centre_lo + spec.hop, [colours[c] for c in pred]))
    final = shown[-1][1]
    pure = tr.kind == PURE
    if pure.any():
        right = final == tr.truth
        rows.append(("correct", centre_lo[pure], centre_lo[pure] + spec.hop,
                     ["#2ca02c" if ok else "#000000" for ok in right[pure]]))  # fmt: skip
    for y, (_, lo, hi, bands) in enumerate(rows):
        ax_band.broken_barh(list(zip(np.asarray(lo) / scale, (np.asarray(hi) - lo) / scale)), (y - 0.4, 0.8),
                            facecolors=bands, edgecolor="none")  # fmt: skip
    ax_band.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax_band.set_ylim(len(rows) - 0.5, -0.5)
    ax_band.set_xlim(0, len(rec) / scale)
    ax_band.set_xlabel(f"time ({'min' if minutes else 's'})")

    handles = [Patch(color=c, label=name.replace("_", " ").lower()) for name, c in zip(result.labels, colours)]
    handles.append(Patch(color=NO_LABEL_COLOUR, label="no label / transition"))
    if result.unknown is not None:
        handles.append(Patch(color=UNKNOWN_COLOUR, label="unknown"))
    if pure.any():
        handles += [Patch(color="#2ca02c", label="right"), Patch(color="#000000", label="wrong")]
    ax_band.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=len(handles),
                   fontsize=8, frameon=False)  # fmt: skip
    title = f"{rec.source}: {result.runtime}, smoothing {result.smoothing}"
    if pure.any():
        accuracy = [f"{float((p[pure] == tr.truth[pure]).mean()):.1%} {name.split()[0]}" for name, p in shown]
        title += f"; accuracy {', '.join(accuracy)} ({int(pure.sum())} pure windows)"
    ax_sig.set_title(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())

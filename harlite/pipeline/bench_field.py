"""``harlite bench field``: how a bundle does in the field, on HAPT's test subjects.

- **unknown and stream**: the bundle (LiteRT int8, its own post-processing) on the test recordings, with
  HAPT's postural transitions as what should be unknown: the share of windows of one activity called
  unknown, the accuracy on the others, the share of transition windows (at least half their samples in a
  transition) called unknown, and the stream metrics (``harlite.core.stream``);
- **rotations**: accuracy on the windows of one activity with the test recordings turned by each of
  ``ROTATIONS`` (``harlite simulate --rotate``), no unknown decision, no smoothing;
- **leave one activity out**: for each of HAPT's six activities a model of the bundle's recipe trained on
  the five others (``epochs``, PTQ int8: a quick schedule unless told otherwise), converted with its unknown
  decision, and the share of the left-out activity's test windows it calls unknown.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harlite.bundle.loader import Bundle
from harlite.bundle.run_folder import ModelInput
from harlite.core.protocol import HAPT, Protocol
from harlite.data.hapt import load_hapt
from harlite.data.windows import Split, WindowSet, load_split
from harlite.errors import DataError
from harlite.pipeline.convert import convert
from harlite.pipeline.train import TrainConfig, train
from harlite.pipeline.unknown import DEFAULT_RATE
from harlite.run.simulate import simulate
from harlite.run.traces import PURE

# The device turned about the vertical (UCI HAR's x) and tilted 20 degrees about y or z.
ROTATIONS = ("x:0", "x:90", "x:180", "x:270",
             *(f"x:{yaw},{axis}:{tilt}" for yaw in (0, 90, 180) for axis in "yz" for tilt in (20, -20)))  # fmt: skip
LOAO_EPOCHS = 30


def bench_field(bundle: Bundle, out: str | Path = "runs/bench_field", epochs: int | None = LOAO_EPOCHS,
                log: Any = print) -> dict[str, Any]:  # fmt: skip
    """The three studies of the module docstring on ``bundle`` (a HAPT bundle); LOAO runs go to ``out``."""
    dataset = bundle.manifest.get("dataset") or {}
    if dataset.get("data", "hapt") != "hapt" or tuple(bundle.labels[:6]) != HAPT.labels:
        raise DataError(f"{bundle.root} was not trained on HAPT's six activities: 'harlite bench field' studies "
                        "HAPT's test subjects (transitions, rotations, each activity left out).")  # fmt: skip
    model_input = ModelInput.from_dict(bundle.manifest)
    split = load_split(model_input.data, model_input.protocol)
    recordings = load_hapt(split.groups["test"], transitions=True)
    log("field: the test recordings, unknown decision and post-processing (LiteRT int8)")
    replay = simulate(bundle, recordings, "litert")
    log("field: the test recordings turned")
    rotated = {}
    for rotation in ROTATIONS:
        result = simulate(bundle, recordings, "litert", "none", rotation=rotation, unknown=False)
        rotated[rotation] = result.metrics["raw"]["accuracy"]
        log(f"field: turned {rotation}: {rotated[rotation]:.2%}")
    loao = leave_one_out(bundle, split, Path(out), epochs, log)
    worst = min(rotated, key=rotated.get)
    return {
        "unknown": replay.unknown,
        "stream": replay.stream,
        "smoothing": str(replay.smoothing),
        "rotations": {
            "accuracy": rotated,
            "unrotated": rotated["x:0"],
            "worst": worst,
            "worst_loss_points": 100 * (rotated["x:0"] - rotated[worst]),
        },  # fmt: skip
        "leave_one_out": loao,
    }


def leave_one_out(bundle: Bundle, split: Split, out: Path, epochs: int | None, log: Any) -> dict[str, Any]:
    """Per activity: train on the five others, convert with the unknown decision, replay the test
    recordings; the share of the left-out activity's windows called unknown."""
    labels = split.protocol.labels[:6]
    recordings = load_hapt(split.groups["test"])
    folds = {}
    for left, name in enumerate(labels):
        log(f"field: leaving {name} out ({epochs or 'default'} epochs)")
        fold = _without(split, left)
        run_dir, fold_bundle = out / name / "train", out / name / "bundle"
        train(run_dir, TrainConfig(epochs=epochs), force=True, split=fold)
        convert(run_dir, fold_bundle, force=True, split=fold, unknown_rate=DEFAULT_RATE)
        result = simulate(fold_bundle, recordings, "litert", "none", unknown=True)
        unknown = np.concatenate([tr.raw == len(fold.protocol.labels) for tr in result.traces])
        left_windows = np.concatenate([_share(rec.labels, tr.starts, result.spec.window, left) >= 0.5
                                       for rec, tr in zip(recordings, result.traces)])  # fmt: skip
        pure = np.concatenate([tr.kind == PURE for tr in result.traces])
        folds[name] = {"left_out_windows": int(left_windows.sum()),
                       "left_out_unknown": float(unknown[left_windows].mean()),
                       "known_unknown": float(unknown[pure].mean()) if pure.any() else None,
                       "accuracy_known": result.metrics["raw"]["accuracy"] if result.metrics else None}  # fmt: skip
        log(f"field: without {name}: {folds[name]['left_out_unknown']:.1%} of its windows unknown")
    return {"epochs": epochs, "schedule": "PTQ int8, no QAT", "folds": folds,
            "mean_left_out_unknown": float(np.mean([f["left_out_unknown"] for f in folds.values()]))}  # fmt: skip


def _without(split: Split, left: int) -> Split:
    """``split`` without the activity ``left``: its windows dropped, the classes after it renumbered."""
    labels = split.protocol.labels
    keep = [c for c in range(len(labels)) if c != left]
    remap = np.full(len(labels), -1)
    remap[keep] = np.arange(len(keep))

    def drop(windows: WindowSet) -> WindowSet:
        kept = windows.take(windows.y != left)
        return replace(kept, y=remap[kept.y])

    protocol = Protocol(tuple(labels[c] for c in keep), split.protocol.frontend)
    return replace(split, protocol=protocol, train=drop(split.train), val=drop(split.val), test=drop(split.test),
                   pool=drop(split.pool))  # fmt: skip


def _share(labels: np.ndarray, starts: np.ndarray, window: int, label: int) -> np.ndarray:
    """Per window the share of its samples labelled ``label``."""
    if not len(starts):
        return np.zeros(0)
    return (np.asarray(labels)[starts[:, None] + np.arange(window)] == label).mean(axis=1)

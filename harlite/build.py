"""``harlite build``: data, train, QAT, convert, parity, simulate and a report in one resumable run."""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harlite.errors import HarliteError
from harlite.manifest import MANIFEST, read_json, write_json
from harlite.protocol import TEST_SUBJECTS
from harlite.stages import RunFolder

STAGES = 7


@dataclass(frozen=True)
class BuildConfig:
    """What a build depends on; ``quick`` makes a small smoke run."""

    model: str = "cnn_lstm"
    seed: int = 0
    quick: bool = False

    @property
    def train_epochs(self) -> int | None:
        return 2 if self.quick else None  # None: the model's default schedule

    @property
    def qat_epochs(self) -> int | None:
        return 1 if self.quick else None  # None: QAT's default schedule

    @property
    def parity_limit(self) -> int | None:
        return 400 if self.quick else None

    @property
    def simulate_subjects(self) -> tuple[int, ...]:
        return TEST_SUBJECTS[:1] if self.quick else TEST_SUBJECTS


def build(out: str | Path, config: BuildConfig = BuildConfig(), release: str | Path | None = None,
          force: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run every stage into the run folder ``out``; returns the gathered results.

    A stage whose inputs are unchanged since the last build into ``out`` is not redone. ``release``
    copies the finished bundle (with its report) to a folder such as ``models/cnn_lstm``.
    """
    from harlite import parity, simulate
    from harlite.convert import convert
    from harlite.qat import qat
    from harlite.report import write_report
    from harlite.train import TrainConfig, train
    from harlite.windows import load_windows

    out = Path(out)
    if release is not None and Path(release, MANIFEST).exists() and not force:
        raise HarliteError(f"{release} already holds a bundle; pass --force to replace it.")
    run = RunFolder(out, STAGES)
    params = asdict(config)
    windows = load_windows()
    run.stage("data", {}, [], lambda: {"windows": len(windows), "classes": windows.class_counts()})

    train_dir, bundle = out / "train", out / "bundle"
    train_config = TrainConfig(model=config.model, seed=config.seed)
    if config.train_epochs is not None:
        train_config = TrainConfig(model=config.model, seed=config.seed, epochs=config.train_epochs)
    run.stage("train", params, ["train/model.keras"],
              lambda: train(train_dir, train_config, force=True, windows=windows))  # fmt: skip
    qat_options = {} if config.qat_epochs is None else {"epochs": config.qat_epochs}
    run.stage("qat", params, ["train/qat/model.keras"],
              lambda: qat(train_dir, force=True, windows=windows, **qat_options))  # fmt: skip
    run.stage("convert", params, ["bundle/manifest.json"],
              lambda: _convert(convert, train_dir, bundle, windows, params))  # fmt: skip
    say = lambda message: print(f"  {message}", file=sys.stderr)  # noqa: E731
    run.stage("parity", params, ["parity/parity.json"], lambda: _parity(parity, bundle, out / "parity", config, say))
    run.stage("simulate", params, ["simulate/timeline.csv"],
              lambda: simulate.run(bundle, dataset="hapt", subjects=config.simulate_subjects, out=out / "simulate",
                                   plot=out / "simulate" / "timeline.png", force=True, log=say))  # fmt: skip
    results = {"config": params, "bundle": str(release or bundle), **run.results, "seconds": run.timings}
    run.stage("report", {**params, "results": results}, ["report.md"],
              lambda: {"files": [str(p) for p in write_report(out, results)]})  # fmt: skip
    write_json(out / "build.json", results)
    if release is not None:
        _release(out, Path(release))
    return results


def _convert(convert: Any, train_dir: Path, bundle: Path, windows: Any, params: dict[str, Any]) -> dict[str, Any]:
    manifest = convert(train_dir / "qat" / "model.keras", bundle, force=True, windows=windows)
    manifest["build"].update(params)  # how it was built: model, seed, quick
    write_json(bundle / MANIFEST, {k: v for k, v in manifest.items() if k != "_root"})
    return {k: manifest[k] for k in ("artifacts", "ops", "tflm", "model", "metrics", "quantization") if k in manifest}


def _parity(parity: Any, bundle: Path, out: Path, config: BuildConfig, say: Any) -> dict[str, Any]:
    report = parity.parity(bundle, limit=config.parity_limit, log=say)
    parity.write_reports(report, out, force=True)
    return report


def _release(run_dir: Path, release: Path) -> None:
    """Copy the bundle and the report (with its pictures) into ``release``."""
    staging = release.with_name(f".{release.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(run_dir / "bundle", staging)
    for page in [run_dir / "report.md", *run_dir.glob("report_*.png")]:
        shutil.copy2(page, staging / page.name)
    shutil.rmtree(release, ignore_errors=True)
    staging.rename(release)
    print(f"harlite build: released {release}", file=sys.stderr)


def load_build(run_dir: str | Path) -> dict[str, Any]:
    """The results of a finished build."""
    return read_json(Path(run_dir) / "build.json")

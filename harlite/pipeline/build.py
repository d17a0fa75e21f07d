"""``harlite build``: data, train, QAT, convert (with the unknown decision), stream calibration, parity,
simulate and a report in one resumable run."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harlite.bundle.manifest import MANIFEST
from harlite.codegen.targets import DEFAULT_TARGET
from harlite.data.hapt import hapt_pickle_path
from harlite.data.windows import DataSpec, check_folders, load_split
from harlite.io.files import write_json
from harlite.pipeline.calibrate import calibrate
from harlite.pipeline.cluster import all_sum, cluster_errors, current, lost_worker
from harlite.pipeline.convert import convert
from harlite.pipeline.release import check_release_target, release_bundle
from harlite.pipeline.report import PICTURES, write_report
from harlite.pipeline.stages import RunFolder
from harlite.pipeline.train import RUN_FILES, TrainConfig, train
from harlite.pipeline.unknown import DEFAULT_RATE
from harlite.pipeline.workers import check_local, qat_on_workers, train_on_workers
from harlite.run import parity, timeline

STAGES = 7


@dataclass(frozen=True)
class BuildConfig:
    """What a build depends on: the data and its protocol options, the model, the seed; ``quick`` makes a
    small smoke run. ``epochs``/``batch_size`` of ``None`` are chosen from the amount of data."""

    model: str = "cnn_lstm"
    seed: int = 0
    quick: bool = False
    data: DataSpec = field(default_factory=DataSpec)
    epochs: int | None = None
    batch_size: int | None = None
    target: str = DEFAULT_TARGET
    unknown_rate: float = DEFAULT_RATE
    mounting: str = "fixed"
    workers: int | None = None  # local worker processes for train and QAT (None: this process, or TF_CONFIG's cluster)
    stream: bool | None = None  # stream the training windows (None: when the split is larger than 64 MB)

    @property
    def train_epochs(self) -> int | None:
        return 2 if self.quick else self.epochs

    @property
    def qat_epochs(self) -> int | None:
        return 1 if self.quick else None  # None: QAT's default schedule

    @property
    def parity_limit(self) -> int | None:
        return 400 if self.quick else None

    def params(self) -> dict[str, Any]:
        """What the stages' keys hold (workers and stream only when set, so earlier builds are kept)."""
        params = {**asdict(self), "data": self.data.to_dict()}
        return {k: v for k, v in params.items() if v is not None or k not in ("workers", "stream")}


def build(out: str | Path, config: BuildConfig = BuildConfig(), release: str | Path | None = None,
          force: bool = False, release_failed: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run every stage into the run folder ``out``; returns the gathered results.

    A stage whose inputs are unchanged since the last build into ``out`` is not redone. ``release``
    copies the finished bundle (with its report) to a folder such as ``models/cnn_lstm`` when the
    parity check passed (or ``release_failed``): ``results["release"]`` says whether it did. A release
    folder holding anything harlite did not release there is refused before training begins.
    """
    out = Path(out)
    if release is not None:
        check_release_target(Path(release), force)
    if config.data.own:
        check_folders(config.data, out)
    if config.workers:
        check_local(config.workers)
    cluster = current() if os.environ.get("TF_CONFIG", "").strip() and not config.workers else None
    if cluster is not None and not cluster.chief:
        return _follow(out, config, cluster)
    params = config.params()
    announce = (lambda redo: all_sum(cluster, [float(redo)])) if cluster is not None and cluster.workers > 1 else None
    with RunFolder(out, STAGES) as run:
        split = load_split(config.data)
        for warning in split.warnings:
            print(f"harlite build: note: {warning}", file=sys.stderr)
        run.stage("data", params["data"], [], lambda: _data_result(split), inputs=data_inputs(config.data))

        train_dir, bundle = out / "train", out / "bundle"
        train_config = _train_config(config)
        run.stage("train", params, [f"train/{name}" for name in RUN_FILES],
                  lambda: _train(train_dir, train_config, split, config), announce=announce)  # fmt: skip
        run.stage("qat", params, ["train/qat"], lambda: _qat(train_dir, split, config), announce=announce)
        say = lambda message: print(f"  {message}", file=sys.stderr)  # noqa: E731
        run.stage("convert", params, ["bundle"], lambda: _convert(convert, train_dir, bundle, split, params, say))
        run.stage("parity", params, ["parity"],
                  lambda: parity.run(bundle, out / "parity", force=True, limit=config.parity_limit, split=split,
                                     log=say)[0])  # fmt: skip
        recordings = split.test_recordings()
        if config.quick:  # one test subject's recordings
            first = recordings[0].subject
            recordings = [r for r in recordings if r.subject == first]
        run.stage("simulate", params, ["simulate"],
                  lambda: timeline.run(bundle, recordings=recordings, out=out / "simulate",
                                       plot=out / "simulate" / "timeline.png", force=True, log=say))  # fmt: skip
        results = {"config": params, "bundle": str(release or bundle), **run.results, "seconds": run.timings}
        pictures = [name for source, name, _ in PICTURES if (out / source).exists()]
        run.stage("report", {**params, "results": results}, ["report.md", *pictures],
                  lambda: {"files": [str(p) for p in write_report(out, results)]})  # fmt: skip
        if release is not None:
            released = release_if_passed(results, out, Path(release), force, release_failed)
            results["release"] = {"path": str(release), "released": released}
        write_json(out / "build.json", results)
    return results


def _train_config(config: BuildConfig) -> TrainConfig:
    return TrainConfig(model=config.model, seed=config.seed, epochs=config.train_epochs, batch_size=config.batch_size,
                       mounting=config.mounting, stream=config.stream)  # fmt: skip


def _train(train_dir: Path, train_config: TrainConfig, split: Any, config: BuildConfig) -> dict[str, Any]:
    if config.workers:
        return train_on_workers(train_dir, train_config, config.workers, force=True, data_spec=config.data)
    return train(train_dir, train_config, force=True, split=split)


def _qat(train_dir: Path, split: Any, config: BuildConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"target": config.target}
    options.update({} if config.qat_epochs is None else {"epochs": config.qat_epochs})
    if config.workers:
        return qat_on_workers(train_dir, config.workers, force=True, **options)
    from harlite.pipeline.qat import qat  # imports TensorFlow, so not at the module's import

    return qat(train_dir, force=True, split=split, **options)


def _follow(out: Path, config: BuildConfig, cluster: Any) -> dict[str, Any]:
    """A worker other than the chief: train and QAT with the cluster whenever the chief (re)does them; the
    chief writes ``out`` (which must be a folder every worker sees: QAT reads the trained model there)."""
    try:
        split = load_split(config.data)
        if all_sum(cluster, [0.0])[0]:
            train(out / "train", _train_config(config), split=split)
        if all_sum(cluster, [0.0])[0]:
            _qat(out / "train", split, config)
    except cluster_errors() as error:
        raise lost_worker(error, cluster, "the build resumes where it stopped") from None
    print(f"harlite build: worker #{cluster.rank} done; the chief writes {out}", file=sys.stderr)
    return {"worker": cluster.rank, "workers": cluster.workers}


def release_if_passed(results: dict[str, Any], out: Path, release: Path, force: bool, release_failed: bool) -> bool:
    """Release the run's bundle into ``release`` if its parity check passed (or ``release_failed``)."""
    if not (results["parity"]["passed"] or release_failed):
        return False
    release_bundle(out, release, force)
    print(f"harlite build: released {release}", file=sys.stderr)
    return True


def data_inputs(spec: DataSpec) -> list[Path]:
    """The files a build's data come from: the embedded HAPT pickle, or the dataset folder(s)."""
    if not spec.own:
        return [hapt_pickle_path()]
    return [Path(spec.data)] + ([Path(spec.test_data)] if spec.test_data is not None else [])


def _data_result(split: Any) -> dict[str, Any]:
    info = split.info()
    return {"windows": sum(len(getattr(split, p)) for p in ("train", "val", "test")), "labels": list(split.protocol.labels),
            "rate_hz": split.protocol.rate_hz, "raw_channels": list(split.protocol.raw_channels),
            "source": split.spec.data, "split": split.kind, "groups": {k: info[k] for k in ("train", "val", "test")},
            "classes": info["windows"], "warnings": split.warnings}  # fmt: skip


def _convert(convert: Any, train_dir: Path, bundle: Path, split: Any, params: dict[str, Any],
             say: Any) -> dict[str, Any]:  # fmt: skip
    """The bundle, with its unknown decision, then its stream post-processing chosen on the validation
    recordings (none without them; ``harlite calibrate``): one stage, since both write the bundle."""
    manifest = convert(train_dir / "qat" / "model.keras", bundle, force=True, split=split, target=params["target"],
                       unknown_rate=params["unknown_rate"])  # fmt: skip
    manifest["build"].update(params)  # how it was built: model, seed, quick, data
    write_json(bundle / MANIFEST, {k: v for k, v in manifest.items() if k != "_root"})
    if split.val_recordings():
        manifest = calibrate(bundle, unknown_rate=None, split=split, log=say)
    else:
        say("no validation recordings: the bundle gets no post-processing")
    return {k: manifest[k] for k in ("artifacts", "ops", "tflm", "model", "metrics", "quantization", "unknown",
                                     "postprocess") if k in manifest}  # fmt: skip

"""Train/QAT/convert benchmark over seeds: ``python benchmarks/train_bench.py --out runs/bench``.

The same function backs ``harlite bench``: :func:`harlite.train.bench_train`.
"""

from __future__ import annotations

import argparse
import json

from harlite.train import bench_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Folder for run folders and train_bench.json.")
    parser.add_argument("--models", default="cnn_lstm,lstm", help="Comma-separated architectures.")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds.")
    parser.add_argument("--epochs", type=int, default=None, help="Training epochs (default: the model's schedule).")
    parser.add_argument("--force", action="store_true", help="Overwrite earlier runs.")
    args = parser.parse_args()
    report = bench_train(
        args.out,
        models=tuple(args.models.split(",")),
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        **({"epochs": args.epochs} if args.epochs else {}),
        force=args.force,
    )
    print(json.dumps({name: m["summary"] for name, m in report["models"].items()}, indent=2))


if __name__ == "__main__":
    main()

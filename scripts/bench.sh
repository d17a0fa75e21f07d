#!/usr/bin/env bash
# Measure the released bundle again and write the figures README.md and firmware/README.md quote: every
# section of harlite bench but train into benchmarks/bench.json, then the tables from it
# (scripts/bench_tables.py). The TFLM figures need the Arduino library's sources: set
# HARLITE_TFLM_ARDUINO to a checkout of tflite-micro-arduino-examples at 7948b85 (firmware/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m harlite bench --bundle models/cnn_lstm --json benchmarks/bench.json --force
python scripts/bench_tables.py

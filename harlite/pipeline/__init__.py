"""The stages from data to a released bundle: train, qat, convert (with its C sources), evaluate, the
report, the resumable build and the benchmark."""

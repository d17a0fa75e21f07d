#!/usr/bin/env bash
# harlite's tests on a Debian or Ubuntu machine, set-up included: the Debian packages of
# .ci/apt-packages.txt that are missing (compilers, cross compilers, QEMU, CMake, clang, Chromium; with
# sudo unless root), then harlite with its test extras (pip install -e), then pytest. Arguments go to
# pytest, e.g. scripts/test.sh tests/test_cores.py -x. Every tool is required: a missing one fails its test.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t packages < <(grep -v '^\s*\(#\|$\)' .ci/apt-packages.txt)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python -m pip install -q -e ".[test]"
python -m pytest -q "$@"

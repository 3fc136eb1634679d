#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) on one GPU, within 8 minutes: the measured bf16 peak, training
# samples/s and FLOP/s utilisation for MiniLM- and bert-base-shaped models, 1/2/4 runs packed on the GPU,
# and the paper profile's GPU-hours at the measured speed. Results go to $OUT (the device tool's folder)
# or benchmarks/results/. Needs torch and transformers (the GPU image has both); nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu_check_nvidia_smi.csv" || true
timeout 460 python3 benchmarks/gpu_check.py --out "$out" "$@"

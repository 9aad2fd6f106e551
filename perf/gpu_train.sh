#!/usr/bin/env bash
# GPU training benchmark (one H100 or H200, under 8 minutes), run from the repository root:
#   bash perf/gpu_train.sh
# `repro bench train --preset gpu-1b`: a Llama-3.2-1B-shaped random-init model in bf16,
# ZeRO-3 on one GPU, 30 timed steps per contender; repro and TRL 1.16 in the same run, with
# tokens/s, peak allocated memory and MFU (LM-head FLOPs counted). Results go to $OUT
# (default out/gpu-bench); copy the table into docs/performance.md with the card's name.
# Packages the machine lacks (deepspeed, datasets, trl, ...) can be carried as wheels in .whl/.
set -uo pipefail
out=${OUT:-out/gpu-bench}
mkdir -p "$out"
source scripts/device_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import sys, torch, transformers, deepspeed, trl; print(sys.version.split()[0], torch.__version__, \
torch.version.cuda, transformers.__version__, deepspeed.__version__, trl.__version__)" > "$out/versions.txt" 2>&1
timeout 470 python3 -m repro bench train --preset gpu-1b --output "$out/bench-gpu-1b.json" > "$out/bench.txt" 2>&1
status=$?
cat "$out/gpu.txt" "$out/versions.txt" "$out/bench.txt"
exit $status

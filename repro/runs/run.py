"""`repro run`: train -> generate -> judge -> score, each stage skipped when its outputs exist
for the same inputs, with a result and a manifest that trace every number to its inputs.

Layout: results/<setting>/<method>/<run-id>/ with train/ (the training run directory),
eval/ (generations, judgments), result.json (scores with CIs), manifest.json (resolved
config and hash, lockfile hash, environment, git commit, BOS checks, data fingerprints,
judge, timings), curves.csv and curves.png. The run id is derived from the resolved
config hash, so the same command finds and resumes the same run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import yaml

from repro import paths
from repro.config import recipes
from repro.errors import ReproError
from repro.evaluation import runner
from repro.runs import environment
from repro.train import launch

DEFAULT_BENCHES = ("alpaca_eval2", "arena_hard", "mt_bench")


def run_id(config: dict[str, Any]) -> str:
    return f"{config['config_hash'][:10]}-seed{config['seed']}"


def safe_child(root: Path, *parts: str) -> Path:
    """A path under `root` that cannot escape it (names come from recipes and flags)."""
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ReproError(f"run path {target} escapes the results directory {root}")
    return target


def judge_plan(benches: list[str]) -> dict[str, Any]:
    costs = yaml.safe_load((paths.EVAL / "costs.yaml").read_text())
    price = costs["price_per_million"]
    calls, dollars = {}, 0.0
    for bench in benches:
        c = costs[bench]
        calls[bench] = c["calls"]
        dollars += (
            c["calls"] * (c["input_tokens"] * price["input"] + c["output_tokens"] * price["output"]) / 1e6
        )
    return {"calls": calls, "total_calls": sum(calls.values()), "estimated_cost_usd": round(dollars, 2)}


def plan(
    config: dict[str, Any], *, results_root: Path, benches: list[str], judge: runner.Judge
) -> dict[str, Any]:
    batch = config["batch"]
    rows = config.get("train_rows")
    steps = math.ceil(rows / batch["total"]) * config["num_train_epochs"] if rows else None
    directory = safe_child(results_root, config["setting"], config["method"], run_id(config))
    return {
        "run_dir": str(directory),
        "setting": config["setting"],
        "method": config["method"],
        "config_hash": config["config_hash"],
        "processes_per_node": batch["num_processes"],
        "nodes": batch["num_nodes"],
        "batch": (
            f"{batch['total']} = {batch['per_device']} per device x "
            f"{batch['gradient_accumulation_steps']} accumulation x {batch['num_processes']} processes"
            f" x {batch['num_nodes']} nodes"
        ),
        "optimizer_steps": int(steps) if steps else None,
        "optimizer_steps_note": None
        if steps
        else "unknown until the dataset is loaded (train_rows not recorded)",
        "judge": judge.describe()
        if judge.kind != "rule"
        else {"kind": "rule", "note": "local rule judge, no cost"},
        "judge_calls": judge_plan(benches)
        if judge.kind != "rule"
        else {"total_calls": "local", "estimated_cost_usd": 0},
    }


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)  # atomic: a reader never sees a torn file


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def curves(metrics: dict[str, Any], directory: Path) -> None:
    """Training curves as CSV and PNG (loss, reward accuracy, margins per logged step)."""
    import csv

    history = [
        h for h in metrics.get("log_history", []) if "loss" in h and "step" in h and "train_loss" not in h
    ]
    evals = [h for h in metrics.get("log_history", []) if "eval_loss" in h]
    keys = ["step", "loss", "rewards/accuracies", "rewards/margins", "learning_rate", "grad_norm"]
    with open(directory / "curves.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for h in history:
            writer.writerow([h.get(k, "") for k in keys])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot([h["step"] for h in history], [h["loss"] for h in history], label="train loss")
    if evals:
        axes[0].plot(
            [h["step"] for h in evals], [h["eval_loss"] for h in evals], "o--", label="held-out loss"
        )
    axes[0].set_xlabel("optimizer step")
    axes[0].legend()
    axes[1].plot([h["step"] for h in history], [h.get("rewards/accuracies") for h in history], label="train")
    if evals:
        axes[1].plot(
            [h["step"] for h in evals],
            [h.get("eval_rewards/accuracies") for h in evals],
            "o--",
            label="held-out",
        )
    axes[1].set_ylabel("reward accuracy")
    axes[1].set_xlabel("optimizer step")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(directory / "curves.png", dpi=110)
    plt.close(fig)


def scores_from(eval_results: dict[str, Any]) -> dict[str, Any]:
    """The published tables' metrics from a `repro eval` result."""
    scores: dict[str, Any] = {}
    if ae := eval_results.get("alpaca_eval2"):
        scores.update(
            ae2_lc=ae.get("length_controlled_winrate"),
            ae2_wr=ae.get("win_rate"),
            ae2_wr_se=ae.get("standard_error"),
            ae2_length=ae.get("avg_length"),
        )
    if ah := eval_results.get("arena_hard"):
        scores.update(
            ah=ah.get("score"), ah_ci=[ah.get("lower"), ah.get("upper")], ah_length=ah.get("avg_tokens")
        )
    if mt := eval_results.get("mt_bench"):
        scores.update(mt_bench=mt.get("average"))
    return scores


@contextlib.contextmanager
def run_lock(directory: Path):
    """One writer per run directory: a second `repro run` of the same run stops with one line."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReproError(
                f"{directory} is being written by another repro process; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def execute(
    config: dict[str, Any],
    method: recipes.Method,
    *,
    results_root: Path,
    benches: list[str],
    judge: runner.Judge,
    tokenization: str = "simpo",
    max_steps: int | None = None,
    limit: int | None = None,
    eval_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume) every stage; returns the result record."""
    info = plan(config, results_root=results_root, benches=benches, judge=judge)
    with run_lock(Path(info["run_dir"])):
        return _execute(
            config,
            method,
            Path(info["run_dir"]),
            benches=benches,
            judge=judge,
            tokenization=tokenization,
            max_steps=max_steps,
            limit=limit,
            eval_kwargs=eval_kwargs,
        )


def _execute(
    config: dict[str, Any],
    method: recipes.Method,
    directory: Path,
    *,
    benches: list[str],
    judge: runner.Judge,
    tokenization: str,
    max_steps: int | None,
    limit: int | None,
    eval_kwargs: dict[str, Any] | None,
) -> dict[str, Any]:
    timings: dict[str, Any] = {}
    train_dir = directory / "train"

    # -- train (skipped when a finished run for this exact config is there)
    done = _read_json(train_dir / "metrics.json")
    previous = _read_json(train_dir / "run.json")
    same = previous is not None and previous.get("config", {}).get("config_hash") == config["config_hash"]
    if done and same and (train_dir / "model" / "config.json").exists():
        timings["train"] = "skipped (outputs exist for the same config)"
    else:
        start = time.time()
        run = launch.prepare(
            config,
            train_dir,
            hyperparameters=recipes.hyperparameters_of(config, method),
            tokenization=tokenization,
            max_steps=max_steps,
        )
        if run.bos_check["status"] == "error":
            raise ReproError(f"BOS check failed ({train_dir / 'bos_check.json'})")
        if launch.launch(run) != 0:
            raise ReproError(f"training failed; see {train_dir / 'train.log'}")
        timings["train"] = round(time.time() - start, 1)
    metrics = _read_json(train_dir / "metrics.json")
    curves(metrics, directory)

    # -- generate + judge + score (skipped when done for the same weights and benchmarks)
    from repro.train.reference import weights_sha256

    weights = weights_sha256(train_dir / "model")
    eval_key = {
        "weights_sha256": weights,
        "benches": sorted(benches),
        "judge": judge.describe(),
        "limit": limit,
    }
    backend = (eval_kwargs or {}).get("backend_name", "transformers")
    eval_dir = directory / "eval"
    if backend != "transformers":  # another engine's answers are another result, in their own folder
        eval_key["backend"] = backend
        eval_dir = directory / f"eval-{backend}"
    cached = _read_json(eval_dir / "result.json")
    if (
        cached
        and cached.get("key") == eval_key
        and not any(isinstance(r, dict) and r.get("incomplete") for r in cached["results"].values())
    ):
        eval_record = cached
        timings["eval"] = "skipped (results exist for the same weights)"
    else:
        start = time.time()
        reference_model = str(train_dir / "init-model") if config["setting"] == "tiny" else None
        ev = runner.Evaluation(
            str(train_dir / "model"),
            config["setting"],
            output=eval_dir,
            judge=judge,
            reference_model=reference_model,
            limit=limit,
            **(eval_kwargs or {}),
        )
        results = ev.run(benches)
        eval_record = {"key": eval_key, "results": results, "bos_check": ev.bos_check, "timings": ev.timings}
        _write_json(eval_dir / "result.json", eval_record)
        timings["eval"] = round(time.time() - start, 1)

    incomplete = [b for b, r in eval_record["results"].items() if isinstance(r, dict) and r.get("incomplete")]
    result = {
        "setting": config["setting"],
        "method": config["method"],
        "run_id": run_id(config),
        "seed": config["seed"],
        "scores": scores_from(eval_record["results"]),
        "training": {
            "held_out_reward_accuracy": metrics["eval"].get("eval_rewards/accuracies"),
            "held_out_loss": metrics["eval"].get("eval_loss"),
            "steps": metrics["steps"],
        },
        "complete": not incomplete,
        "incomplete_benchmarks": incomplete,
    }
    manifest = {
        "config": config,
        "config_hash": config["config_hash"],
        "environment": environment.freeze(),
        "tokenizer_checks": {
            "train": _read_json(train_dir / "bos_check.json"),
            "eval": eval_record.get("bos_check"),
        },
        "data": metrics.get("data"),
        "reference": metrics.get("reference"),
        "engine": metrics.get("engine"),
        "judge": judge.describe(),
        "judge_calls": eval_record["results"].get("judge_calls"),
        "weights_sha256": weights,
        "timings_seconds": timings,
    }
    _write_json(directory / "manifest.json", manifest)
    _write_json(directory / "result.json", result)  # written last: its presence means the run is complete
    result["run_dir"] = str(directory)
    result["timings"] = timings
    return result

"""`repro compare RUN --curves FILE.csv`: training curves against a published history.

Synthetic histories with known answers: the published history is written from the very
numbers the run logged (W&B CSV export layout and plain CSV), so the deviation must be
exactly 0; a copy with train/rewards/margins shifted by +0.5 must deviate by exactly 0.5
(max and mean) and fall outside the default band (10% of the published span, about
0.19 here); a published run with half the steps per epoch lines up only by epoch fraction.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from repro.errors import ReproError
from repro.runs.analysis import curves

RUN_NAME = "gemma-2-9b-it-simpo"


def values(fraction: float) -> dict[str, float]:
    return {
        "loss": 0.7 * math.exp(-3 * fraction),
        "rewards/margins": 2.0 * (1 - math.exp(-3 * fraction)),
        "rewards/accuracies": min(1.0, 0.5 + fraction),
        "rewards/chosen": -1.0 + fraction,
        "rewards/rejected": -1.0 - fraction,
        "logps/chosen": -1.5 + 0.2 * fraction,
        "logps/rejected": -1.6 - 0.5 * fraction,
    }


def log_history(steps_per_epoch: int, every: int) -> list[dict]:
    rows = [{"eval_loss": 0.7, "eval_rewards/accuracies": 0.5, "step": 0, "epoch": 0}]
    for step in range(every, steps_per_epoch + 1, every):
        epoch = step / steps_per_epoch
        rows.append({"step": step, "epoch": epoch, "learning_rate": 1e-6, **values(epoch)})
    rows.append({"train_loss": 0.3, "step": steps_per_epoch, "epoch": 1.0})
    return rows


@pytest.fixture
def run_dir(tmp_path) -> Path:
    folder = tmp_path / "run" / "train"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"log_history": log_history(200, 10)}))
    return folder.parent


def wandb_csv(path: Path, history: list[dict], runs=(RUN_NAME,), shift: float = 0.0) -> Path:
    keys = ["loss", "rewards/margins", "rewards/accuracies"]
    header = ["train/global_step"]
    for run in runs:
        for key in keys:
            header += [f"{run} - train/{key}", f"{run} - train/{key}__MIN", f"{run} - train/{key}__MAX"]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for h in curves.training_logs(history):
            row = [h["step"]]
            for _ in runs:
                for key in keys:
                    value = h[key] + (shift if key == "rewards/margins" else 0.0)
                    row += [repr(value), repr(value - 1), repr(value + 1)]
            writer.writerow(row)
    return path


def plain_csv(path: Path, history: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss", "rewards/margins", "rewards/accuracies"])
        for h in curves.training_logs(history):
            writer.writerow(
                [h["step"], repr(h["loss"]), repr(h["rewards/margins"]), repr(h["rewards/accuracies"])]
            )
    return path


def test_identical_wandb_history_deviates_by_zero(run_dir, tmp_path, cli):
    published = wandb_csv(tmp_path / "wandb.csv", log_history(200, 10))
    plot = tmp_path / "curves.png"
    proc = cli(
        "compare",
        str(run_dir),
        "--curves",
        str(published),
        "--plot",
        str(plot),
        "--format",
        "json",
        "--fail-outside-tolerance",
        check=True,
    )
    report = json.loads(proc.stdout)
    assert report["align"] == "step" and "optimizer step" in report["align_reason"]
    assert [m["metric"] for m in report["metrics"]] == list(curves.DEFAULT_METRICS)
    for m in report["metrics"]:
        assert m["status"] == "within" and m["max_abs_deviation"] == 0 and m["mean_abs_deviation"] == 0
        assert m["points"] == 20
    assert plot.read_bytes()[:4] == b"\x89PNG"
    table = cli("compare", str(run_dir), "--curves", str(published), check=True).stdout
    assert "train/rewards/margins" in table and "aligned by optimizer step" in table


def test_shifted_curve_is_outside_and_fails(run_dir, tmp_path, cli):
    published = wandb_csv(tmp_path / "shifted.csv", log_history(200, 10), shift=0.5)
    args = ["compare", str(run_dir), "--curves", str(published), "--metric", "rewards/margins,loss"]
    report = json.loads(cli(*args, "--format", "json", check=True).stdout)
    margins, loss = report["metrics"]
    assert margins["metric"] == "train/rewards/margins" and margins["status"] == "outside"
    assert margins["max_abs_deviation"] == pytest.approx(0.5, abs=1e-12)
    assert margins["mean_abs_deviation"] == pytest.approx(0.5, abs=1e-12)
    assert margins["tolerance"] == pytest.approx(0.1 * 2.0 * (math.exp(-0.15) - math.exp(-3)), rel=1e-9)
    assert loss["status"] == "within" and loss["max_abs_deviation"] == 0
    failing = cli(*args, "--fail-outside-tolerance")
    assert failing.returncode == 1 and failing.stderr.strip().splitlines()[-1] == (
        "repro: error: 1 curves are outside tolerance: train/rewards/margins"
    )
    loose = cli(*args, "--curve-tolerance", "rewards/margins=0.6", "--fail-outside-tolerance", "-f", "json")
    assert loose.returncode == 0 and all(m["status"] == "within" for m in json.loads(loose.stdout)["metrics"])
    report = curves.compare(curves.read_run(run_dir), curves.read_published(published), ["rewards/margins"])
    drawn = curves.plot(
        report, curves.read_run(run_dir), curves.read_published(published), tmp_path / "p.png"
    )
    assert drawn == {"train/rewards/margins": [f"published ({RUN_NAME})", "this run"]}


def test_plain_csv_with_other_step_counts_aligns_by_epoch(run_dir, tmp_path, cli):
    published = plain_csv(tmp_path / "plain.csv", log_history(100, 5))  # same fractions, half the steps
    report = json.loads(
        cli("compare", str(run_dir), "--curves", str(published), "-f", "json", check=True).stdout
    )
    assert report["align"] == "epoch" and "step counts differ" in report["align_reason"]
    assert all(m["max_abs_deviation"] == 0 and m["status"] == "within" for m in report["metrics"])
    forced = json.loads(
        cli(
            "compare", str(run_dir), "--curves", str(published), "--align", "step", "-f", "json", check=True
        ).stdout
    )
    assert forced["align"] == "step" and any(m["status"] == "outside" for m in forced["metrics"])


def test_several_wandb_runs_and_bad_requests(run_dir, tmp_path, cli):
    published = wandb_csv(tmp_path / "two.csv", log_history(200, 10), runs=("run-a", "run-b"))
    proc = cli("compare", str(run_dir), "--curves", str(published))
    assert proc.returncode == 1 and "several W&B runs" in proc.stderr and "run-a, run-b" in proc.stderr
    picked = json.loads(
        cli(
            "compare",
            str(run_dir),
            "--curves",
            str(published),
            "--curve-run",
            "run-b",
            "-f",
            "json",
            check=True,
        ).stdout
    )
    assert picked["published"] == "run-b"
    for extra, needle in (
        (["--metric", "rewards/kl"], "train/rewards/kl is not in the run"),
        (["--curve-tolerance", "margins=wide"], "--curve-tolerance expects"),
        (["--curve-run", "run-c"], "unknown W&B run in two.csv 'run-c'"),
    ):
        bad = cli("compare", str(run_dir), "--curves", str(published), "--curve-run", "run-a", *extra)
        assert bad.returncode in (1, 2) and bad.stderr.count("\n") == 1 and needle in bad.stderr, bad.stderr
    missing = cli("compare", str(tmp_path / "nothing"), "--curves", str(published))
    assert missing.returncode == 1 and "nothing: no such directory" in missing.stderr  # checked while parsing


def test_curves_csv_uses_the_original_trainers_names(tmp_path):
    from repro.runs.pipeline import run

    run.curves(log_history(200, 10), tmp_path)
    with open(tmp_path / "curves.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:2] == ["step", "epoch"] and set(curves.TRAINER_KEYS) <= set(header)
    history = curves.read_run(tmp_path)  # no metrics.json: read back from curves.csv
    assert [v for _, v, _ in history.points["train/rewards/margins"]] == [
        values(s / 200)["rewards/margins"] for s in range(10, 201, 10)
    ]
    with pytest.raises(ReproError, match="no step column"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        curves.read_published(tmp_path / "x.csv")


def test_cells_that_are_not_numbers_are_counted_in_a_note(tmp_path):
    """A text cell in a published CSV was skipped without a word; an empty cell or NaN (W&B's
    gaps between logged steps) is no value and no note."""
    published = tmp_path / "mixed.csv"
    published.write_text("step,train/loss,train/rewards/margins\n5,abc,0.1\n10,0.5,\nx,0.4,0.2\n15,nan,0.3\n")
    history = curves.read_published(published)
    assert history.notes == ["skipped 2 cells that are not numbers (first: row 1 train/loss 'abc')"]
    assert [s for s, _, _ in history.points["train/loss"]] == [10.0]
    plain = tmp_path / "plain.csv"
    plain.write_text("step,train/loss\n5,0.6\n10,\n")
    assert curves.read_published(plain).notes == []
    with pytest.raises(ReproError, match="holds no W&B run columns"):  # --curve-run was ignored
        curves.read_published(plain, "run-a")

"""Help and plots a person can read (issue 13, item 6).

- Help: every command's --help at 80 columns has no line over 80 characters, every option
  and argument has a help line, booleans show as flags (never `<bool>`), --format names its
  choices. Oracle: the rendered help text itself.
- compare.png: no two pieces of text overlap. Oracle: matplotlib's own rendered bounding
  boxes of every visible text (titles, tick labels, axis labels, legend) on a crowded
  comparison (every published setting x method with a run, plus the tiny band).
- curves.png: the figure names the run (setting, method, run id) and both axes of both panels.
- Plans: `run --dry-run` prints the judge as words (kind, URL, model per benchmark, key
  variable) and its cost, and the optimizer steps with --max-steps applied; `sweep --dry-run`
  prints the judge cost and warns above 100 grid points. Cost oracle, by hand from
  eval/costs.yaml for --limit 10: AE2 10 calls x (1000 x $10 + 1 x $30)/1e6 = 0.1003, AH 20 x
  (2500 x 10 + 800 x 30)/1e6 = 0.98, MT 20 x (1000 x 10 + 300 x 30)/1e6 = 0.38: $1.46, 50 calls.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest
import typer

from repro.cli.main import app, main
from repro.runs.analysis import compare, plots, published

REPRO = Path(sys.executable).parent / "repro"  # the entry point, as tests/conftest.py runs it


def every_command() -> list[tuple[list[str], object]]:
    found = []

    def walk(command, path: list[str]) -> None:
        found.append((path, command))
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def run_inprocess(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- help


COMMANDS = every_command()


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "repro" for p, _ in COMMANDS])
def test_help_is_readable_at_80_columns(path, command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, text, _ = run_inprocess([*path, "--help"])
    assert code == 0 and text.strip()
    too_long = [line for line in text.splitlines() if len(line) > 80]
    assert not too_long, too_long
    assert "<bool>" not in text
    for param in command.params:
        assert (getattr(param, "help", None) or "").strip(), f"{' '.join(path)}: {param.name} has no help"
        if getattr(param, "is_flag", False):
            assert all(f"{opt} <" not in text for opt in param.opts), f"{param.opts} shows a type"
        if "--format" in getattr(param, "opts", []):
            choices = param.metavar.split("|")
            assert len(choices) >= 2, f"{' '.join(path)}: --format does not list its choices"
            assert all(choice in param.help for choice in choices)


def test_root_help_through_the_entry_point():
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run([str(REPRO), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and re.search(r"^  --help +Show this message and exit\.$", proc.stdout, re.M)
    assert "<bool>" not in proc.stdout and max(map(len, proc.stdout.splitlines())) <= 80


# --------------------------------------------------------------------------- plots


def crowded_comparison() -> compare.Comparison:
    rows = []
    for i, prow in enumerate(published.load()):
        for metric in compare.compared():
            value = prow.scores.get(metric)
            if value is None:
                continue
            runs = [value + (i % 5) - 2, value + (i % 3)]
            rows.append(compare.Row(prow.setting, prow.method, metric, value, runs, tolerance=1.0))
    rows.append(compare.Row("tiny", "simpo", "ae2_wr", None, [81.0, 83.0], band=(60.0, 100.0)))
    long_name = "a-setting-with-a-very-long-name-indeed-v0.3"
    rows.append(compare.Row(long_name, "slic-hf", "ah", 12.0, [13.0], tolerance=1.0))
    return compare.Comparison(rows, [])


def visible_texts(fig) -> list:
    """(text, box) of every text the PNG shows: titles, axis labels, legend entries, and the
    tick labels inside each axis's view (matplotlib keeps unused tick labels off-canvas)."""
    renderer = fig.canvas.get_renderer()
    texts = [fig._suptitle] if fig._suptitle else []
    texts += [t for legend in fig.legends for t in legend.get_texts()]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        if ax.get_legend():
            texts += ax.get_legend().get_texts()
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            texts += [t.label1 for t in axis.get_major_ticks() if low <= t.get_loc() <= high]
    return [
        (t.get_text(), t.get_window_extent(renderer))
        for t in texts
        if t.get_visible() and t.get_text().strip()
    ]


def test_compare_plot_text_never_overlaps(tmp_path):
    comparison = crowded_comparison()
    fig = plots.compare_figure(comparison.rows, compare.metric_titles(), compare.default_tolerance())
    fig.canvas.draw()
    texts = visible_texts(fig)
    labels = [t for t, _ in texts]
    assert len([t for t in labels if " / " in t]) >= 50  # one row label per setting/method
    assert any(t.endswith("\u2026") for t in labels)  # the long label is ellipsized
    overlaps = [(a, b) for (a, box_a), (b, box_b) in combinations(texts, 2) if box_a.overlaps(box_b)]
    assert not overlaps, overlaps[:5]
    path = compare.plot(comparison, tmp_path / "compare.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    titles = compare.metric_titles()
    axes = {ax.get_title(): ax.get_xlabel() for ax in fig.axes if ax.get_title()}
    assert axes[titles["ae2_wr"]] == "score (points)"  # a length is no score (the smol report's GSM)
    assert axes.get(titles["gsm_length"], "length") == "length"
    assert plots.axis_label("gsm_length") == "length" and plots.axis_label("ae2_length") == "length"


def test_curves_name_the_run_and_the_axes(tmp_path):
    history = [{"step": s, "loss": 1 / s, "rewards/accuracies": 0.5 + s / 100} for s in range(1, 9)]
    history += [{"step": 8, "eval_loss": 0.4, "eval_rewards/accuracies": 0.6}, {"step": 8, "train_loss": 0.3}]
    title = plots.run_title(Path("results/tiny/simpo/fe1426ff64-seed42"))
    fig = plots.curves_figure(history, title=title)
    assert "tiny x simpo" in fig._suptitle.get_text() and "fe1426ff64-seed42" in fig._suptitle.get_text()
    for ax in fig.axes:
        assert ax.get_xlabel() == "optimizer step" and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is not None
    fig.canvas.draw()
    texts = visible_texts(fig)
    assert not [(a, b) for (a, x), (b, y) in combinations(texts, 2) if x.overlaps(y)]
    written = plots.curves(history, tmp_path / "curves.png", title=title)
    assert written.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- plans


def test_run_dry_run_prints_judge_cost_and_capped_steps(tmp_path):
    results = tmp_path / "results"
    code, out, err = run_inprocess(
        ["run", "tiny", "--dry-run", "--max-steps", "3", "--results", str(results)]
    )
    assert code == 0, err
    assert "3 (--max-steps 3; a full epoch is 32)" in out and "rule judge (local" in out
    assert "{'" not in out  # no Python dict reprs in a plan meant for people
    code, out, err = run_inprocess(
        [
            "run",
            "llama3-instruct-v0.2",
            "--dry-run",
            "--judge-url",
            "http://127.0.0.1:9/v1",
            "--limit",
            "10",
            "--max-steps",
            "5",
            "--results",
            str(results),
        ]
    )
    assert code == 0, err
    flat = " ".join(out.split())
    assert "endpoint http://127.0.0.1:9/v1" in flat and "gpt-4 (mt_bench)" in flat
    assert "gpt-4-1106-preview (alpaca_eval2, arena_hard)" in flat and "$OPENAI_API_KEY" in flat
    assert "50 calls (alpaca_eval2 10, arena_hard 20, mt_bench 20), about $1.46" in flat
    assert "at most 5 (--max-steps" in flat and "{'" not in out
    code, out, _ = run_inprocess(
        ["run", "tiny", "--dry-run", "--max-steps", "3", "--results", str(results), "-f", "json"]
    )
    plan = json.loads(out)
    assert plan["optimizer_steps"] == 3 and plan["optimizer_steps_full_epoch"] == 32
    assert not results.exists()  # a dry run writes nothing


def test_sweep_dry_run_shows_cost_and_warns_over_100_points(tmp_path):
    grid = [
        "--lr",
        "3e-7,4e-7,5e-7,6e-7,8e-7",
        "--beta",
        "2,2.5,5,8,10",
        "--gamma-beta-ratio",
        "0.1,0.3,0.5,0.7,0.9",
    ]
    argv = [
        "sweep",
        "tiny",
        *grid,
        "--judge-url",
        "http://127.0.0.1:9/v1",
        "--dry-run",
        "--results",
        str(tmp_path),
    ]
    code, out, err = run_inprocess([*argv, "-f", "json"])
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 125 and all(r["judge_calls"] == 1965 for r in rows)
    assert err.startswith("repro: warning: 125 grid points (5 x 5 x 5): more than 100 runs")
    code, out, err = run_inprocess(argv)
    flat = " ".join(out.split())
    assert code == 0 and "125 runs, about $7513.75 of judging in all" in flat, flat[-400:]
    code, _, err = run_inprocess(
        ["sweep", "tiny", "--lr", "3e-7,5e-7", "--dry-run", "--results", str(tmp_path)]
    )
    assert code == 0 and "warning" not in err

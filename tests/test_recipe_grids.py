"""Recipe fidelity: the methods' search grids with their sources, `repro sweep --grid`, and the
pinned pre-update Llama 3 tokenizer revision.

Oracles: the paper's App. B / Table 7 grids as transcribed in shared/reference (SimPO: beta
{2.0, 2.5}, absolute gamma {0.3, 0.5, 1.0, 1.2, 1.4, 1.6}, learning rate {3e-7, 5e-7, 6e-7,
1e-6}; DPO: beta {0.01, 0.05, 0.1}), the seed README's recommendations, and the seed README's
BOS section (the released Llama 3 models use the tokenizer from before commit 339ce92).
"""

from __future__ import annotations

import json

import pytest

from repro.config.methods import get_method, load_methods, search_grid
from repro.config.resolution import resolve
from repro.config.settings import get_setting
from repro.data import tokenizers
from repro.errors import ReproError

PAPER_SIMPO = {
    "learning_rate": [3e-7, 5e-7, 6e-7, 1e-6],
    "beta": [2.0, 2.5],
    "gamma": [0.3, 0.5, 1.0, 1.2, 1.4, 1.6],
}
README_SIMPO = {
    "learning_rate": [3e-7, 5e-7, 8e-7, 1e-6],
    "beta": [2.0, 2.5, 10.0],
    "gamma_beta_ratio": [0.0, 0.25, 0.5, 0.75, 1.0],
}


def test_dpo_searches_the_papers_betas():
    grid = get_method("dpo").search_grids["paper"]
    assert grid.axes["beta"] == [0.01, 0.05, 0.1] and "Table 7" in grid.source


def test_simpo_has_the_papers_grid_and_the_readmes_each_with_its_source():
    grids = get_method("simpo").search_grids
    assert grids["paper"].axes == PAPER_SIMPO and "App. B" in grids["paper"].source
    assert grids["readme"].axes == README_SIMPO and "README" in grids["readme"].source
    assert all(g.source for m in load_methods().values() for g in m.search_grids.values())


def test_an_absolute_gamma_becomes_the_ratio_a_run_sets():
    points = get_method("simpo").search_grids["paper"].points()
    assert len(points) == 4 * 2 * 6
    assert {"learning_rate": 3e-7, "beta": 2.5, "gamma_beta_ratio": 0.56} in points  # gamma 1.4


@pytest.mark.parametrize(
    ("grid", "count", "axis"), [("paper", 48, "gamma"), ("readme", 60, "gamma_beta_ratio")]
)
def test_sweep_dry_run_prints_each_grid(grid, count, axis, cli, tmp_path):
    args = ["sweep", "tiny", "--method", "simpo", "--grid", grid, "--dry-run", "--results", str(tmp_path)]
    out = json.loads(cli(*args, "--format", "json", check=True).stdout)
    assert out["grid"] == grid and out["source"] == search_grid("simpo", grid).source
    assert len(out["points"]) == count and len({p["run_dir"] for p in out["points"]}) == count
    values = sorted({p[axis] for p in out["points"]})
    assert values == sorted((PAPER_SIMPO if grid == "paper" else README_SIMPO)[axis])
    table = cli(*args, check=True)
    assert f"grid {grid}" in table.stdout and "grid source:" in table.stdout


def test_sweep_refuses_an_unknown_grid_or_a_grid_with_axes(cli):
    bad = cli("sweep", "tiny", "--grid", "papr", "--dry-run")
    assert bad.returncode == 2 and "did you mean 'paper'" in bad.stderr and bad.stderr.count("\n") == 1
    both = cli("sweep", "tiny", "--grid", "paper", "--lr", "1e-6", "--dry-run")
    assert both.returncode == 2 and "--grid replaces" in both.stderr


def test_the_command_lines_axes_are_parsed_once_in_the_library():
    """repro.runs.pipeline.sweep reads --lr/--beta/--gamma-beta-ratio as given (the CLI only passes them on):
    comma-separated numbers, empty axes left out, a bad value named by its flag; a grid over 100
    points gets its warning, with the axes' shape for a command-line grid only."""
    from repro.runs.pipeline import sweep

    grid = sweep.grid_of(
        "simpo", None, {"learning_rate": "1e-6, 2e-6,", "beta": ",", "gamma_beta_ratio": None}
    )
    assert grid.axes == {"learning_rate": [1e-6, 2e-6]} and sweep.size_warning(grid) is None
    with pytest.raises(ReproError, match="^--gamma-beta-ratio expects comma-separated numbers, got 'x'$"):
        sweep.grid_of("simpo", None, {"learning_rate": "1e-6", "beta": None, "gamma_beta_ratio": "x"})
    five = ",".join(str(v) for v in range(1, 6))
    big = sweep.grid_of("simpo", None, {"learning_rate": five, "beta": five, "gamma_beta_ratio": five})
    assert (
        sweep.size_warning(big) == "125 grid points (5 x 5 x 5): more than 100 runs, each trained and judged"
    )
    assert sweep.size_warning(search_grid("simpo", "paper")) is None  # 48 points


def test_a_grid_without_source_is_refused(tmp_path):
    path = tmp_path / "methods.yaml"
    path.write_text(
        "dpo:\n  title: DPO\n  reference_model: true\n  log_probs: sum\n"
        "  hyperparameters:\n    beta: {type: float, default: 0.1, source: x}\n"
        "  search_grids:\n    paper:\n      beta: [0.1]\n"
    )
    with pytest.raises(ReproError, match="with a source"):
        load_methods(path)


def test_method_traits_are_data(tmp_path):
    """A method's traits come from methods.yaml: another method with a derived value gets
    SimPO's treatment (grid axis, resolved value, source); KTO alone needs mismatched pairs."""
    methods = load_methods()
    assert [m.name for m in methods.values() if m.mismatched_pairs] == ["kto"]
    assert [m.name for m in methods.values() if m.derived] == ["simpo"]
    path = tmp_path / "methods.yaml"
    path.write_text(
        "toy:\n  title: Toy\n  log_probs: sum\n"
        "  hyperparameters:\n    a: {type: float, default: 2.0, source: x}\n"
        "    r: {type: float, default: 0.5, source: x}\n"
        "  derived:\n    m: {times: [a, r], source: 'derived: a x r'}\n"
        "  search_grids:\n    paper:\n      source: x\n      a: [2.0]\n      m: [1.0, 3.0]\n"
    )
    toy = load_methods(path)["toy"]
    assert toy.search_grids["paper"].points() == [{"a": 2.0, "r": 0.5}, {"a": 2.0, "r": 1.5}]
    config = resolve(get_setting("tiny"), toy)
    assert config.hyperparameters["m"] == 1.0 and config.sources["m"] == "derived: a x r"
    path.write_text(path.read_text().replace("      a: [2.0]\n", ""))
    with pytest.raises(ReproError, match="an absolute m axis needs a a axis"):
        load_methods(path)
    path.write_text(path.read_text().replace("times: [a, r]", "times: [a, q]"))
    with pytest.raises(ReproError, match="derived.m.times"):
        load_methods(path)


@pytest.mark.parametrize("setting", ["llama3-instruct", "llama3-instruct-v0.2"])
def test_llama3_instruct_pins_the_pre_update_tokenizer_with_its_source(setting, cli):
    config = json.loads(cli("show", setting, "--method", "simpo", "--format", "json", check=True).stdout)
    assert config["tokenizer_revision"] == "parent-of:339ce92d052f002cdbac4a4bd551d1c61dd8345e"
    assert "339ce92" in config["sources"]["tokenizer_revision"]
    assert "README" in config["sources"]["tokenizer_revision"]


def test_other_settings_pin_no_tokenizer_revision():
    """Only the Llama 3 Instruct settings pin a tokenizer revision; the others load the model's."""
    config = resolve(get_setting("mistral-base"), get_method("simpo"))
    assert config.tokenizer_revision is None


def test_parent_of_resolves_to_the_commit_before():
    history = ["c3", "339ce92d052f", "a1", "a0"]  # newest first, as the hub lists them
    assert tokenizers.parent_commit(history, "339ce92d") == "a1"
    with pytest.raises(ReproError, match="not in the history"):
        tokenizers.parent_commit(history, "ffff")
    with pytest.raises(ReproError, match="no parent"):
        tokenizers.parent_commit(history, "a0")


def test_parent_of_needs_the_hub_and_says_so_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ReproError, match="needs the hub"):
        tokenizers.resolve_revision("meta-llama/Meta-Llama-3-8B-Instruct", "parent-of:339ce92d")
    assert tokenizers.resolve_revision("any/repo", "main") == "main"

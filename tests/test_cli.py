"""The CLI through the installed entry point: outputs, and one-line errors with exit 2."""

from __future__ import annotations

import json

import pytest
import yaml

ALL_METHODS = {"simpo", "dpo", "ipo", "cpo", "kto", "orpo", "rdpo", "rrhf", "slic-hf"}


def test_recipes_lists_every_setting_and_method(cli):
    rows = json.loads(cli("recipes", "--format", "json", check=True).stdout)
    settings = {r["setting"] for r in rows}
    assert settings == {
        "mistral-base",
        "mistral-instruct",
        "llama3-base",
        "llama3-instruct",
        "llama3-instruct-v0.2",
        "gemma2-9b-it",
        "tiny",
        "smol",
    }
    assert {r["method"] for r in rows} == ALL_METHODS
    assert len(rows) == 8 * 9
    published = {(r["setting"], r["method"]) for r in rows if r["source"] == "published"}
    assert ("gemma2-9b-it", "simpo") in published and ("gemma2-9b-it", "ipo") not in published
    table = cli("recipes", check=True).stdout
    assert "gamma=3" in table and "llama3-instruct-v0.2" in table


@pytest.mark.parametrize("fmt", ["table", "yaml", "json"])
def test_show_formats(cli, fmt):
    out = cli("show", "gemma2-9b-it", "--method", "simpo", "--format", fmt, check=True).stdout
    if fmt == "json":
        assert json.loads(out)["hyperparameters"]["gamma"] == 5.0
    elif fmt == "yaml":
        assert yaml.safe_load(out)["learning_rate"] == 8e-7
    else:
        assert "gemma2-9b-it x simpo" in out and "derived: gamma_beta_ratio x beta" in out


@pytest.mark.parametrize("setting", ["tiny", "smol"])
def test_show_a_setting_that_answers_with_the_models_own_template(cli, setting):
    """tiny and smol generate Arena-Hard answers with the model's own chat template, not a
    served one: `show` names it instead of failing on it (it did for smol)."""
    data = json.loads(cli("show", setting, "--method", "simpo", "--format", "json", check=True).stdout)
    if setting == "smol":
        assert data["arena_hard_chat_template"]["name"] == "tokenizer"
        assert data["learning_rate"] == 6e-5


def test_the_config_options_mean_the_same_in_every_command(cli, tmp_path):
    """--gpus, --nodes, --layout and --set are declared once (repro.cli.common.with_config_options):
    `show`, `run --dry-run` and `train --dry-run` resolve the same flags to the same config."""
    flags = ["llama3-instruct-v0.2", "--method", "dpo", "--gpus", "4", "--nodes", "2"]
    flags += ["--layout", "paper-time", "--set", "beta=0.05"]
    shown = json.loads(cli("show", *flags, "--format", "json", check=True).stdout)
    planned = json.loads(cli("run", *flags, "--dry-run", "--format", "json", check=True).stdout)
    cli("train", *flags, "--dry-run", "--planned-files", str(tmp_path / "p"), check=True)
    trained = json.loads((tmp_path / "p" / "run.json").read_text())["config"]
    assert shown["batch"]["num_nodes"] == 2 and shown["batch"]["layout"] == "paper-time"
    assert shown["hyperparameters"]["beta"] == 0.05
    assert shown["config_hash"] == planned["config_hash"] == trained["config_hash"]


def test_show_gpu_count(cli):
    config = json.loads(
        cli("show", "llama3-instruct-v0.2", "--gpus", "8", "--format", "json", check=True).stdout
    )
    assert config["batch"]["gradient_accumulation_steps"] == 8 and config["batch"]["total"] == 128


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "lama3-instruct"], "unknown setting 'lama3-instruct': valid: "),
        (["show", "llama3-base", "--method", "simpoo"], "did you mean 'simpo'"),
        (["show", "llama3-base", "--fromat", "json"], "did you mean '--format'"),
        (["shwo", "llama3-base"], "unknown command for 'repro' 'shwo': valid: "),
        (
            ["show", "llama3-base", "--format", "jsn"],
            "unknown format 'jsn': valid: json, table, yaml",
        ),
        (["show", "llama3-base", "--set", "bta=2"], "unknown key 'bta' (did you mean 'beta'?)"),
        (["show", "llama3-base", "--set", "beta=2", "--set", "beta=3"], "--set beta given twice (2 and 3)"),
        (["show", "llama3-base", "--layout", "paper"], "unknown layout 'paper'"),
        (["published", "--method", "simpoo"], "did you mean 'simpo'"),
        (["env", "chek"], "did you mean 'check'"),
        (["env", "diff", "--against", "conda"], "valid: paper"),
        (["show", "llama3-base", "--gpus", "many"], "--gpus"),
        (["show", "llama3-base", "simpo"], "(simpo) (did you mean '--method simpo'?)"),
        (["diagnose"], "give a run folder or --outputs FILE (with --setting and --method), one is needed"),
        (["run", "tiny", "--judge-model", "gpt-4", "--dry-run"], "--judge-model names an endpoint judge"),
        (["sweep", "tiny", "--method", "simpo", "--lr", "1e-4,0.0001", "--dry-run"], "to the same run"),
        (["compare", "results", "simpo"], "unexpected extra argument(s) (simpo)\n"),
        (["compare", ".", "--metric", "loss"], "--metric: only with --curves"),  # it was ignored
        (["run", "tiny", "--partition", "gpu", "--time", "1:00:00", "--dry-run"], "--time go with"),
        (["train", "tiny", "--partition", "gpu", "--dry-run"], "--partition goes with --launcher slurm"),
        (["train", "tiny", "--account", "lab", "--dry-run"], "--account goes with --launcher slurm"),
        (["train", "tiny", "--launcher", "slurm", "--time", "1:99:00", "--dry-run"], "run to 59"),
        (["train", "tiny", "--launcher", "slurrm", "--dry-run"], "did you mean 'slurm'"),
        (["run", "tiny", "--judge-key-env", "MY_KEY", "--dry-run"], "--judge-key-env names an endpoint"),
        (["compare", ".", "--tolerance", "ah=1", "--tolerance", "ah=2"], "--tolerance ah given twice"),
        (["bench", "train", "--preset", "cpu-small", "--contenders", ","], "names no contender"),
        (["bench", "train", "--preset", "cpu-small", "--contenders", "repro-simpo,repro-simpo"], "twice"),
        (["train", "tiny", "--report-to", "wandb,none", "--dry-run"], "'none' cannot be combined"),
        (["train", "tiny", "--planned-files", "/tmp/repro-no-such-dir"], "--planned-files goes with"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli, args, needle):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("repro: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "llama3-base", "--set", "beta=-1"], "must be above 0"),
        (["show", "tiny", "--set", "num_train_epochs=0"], "num_train_epochs: must be above 0, got 0"),
        (["show", "tiny", "--method", "ipo", "--set", "tau=0"], "ipo.tau: must be above 0"),  # 1/(2 tau)
        (["show", "tiny", "--method", "rdpo", "--set", "alpha=-1"], "alpha: -1.0 is below the minimum 0"),
        (["show", "tiny", "--set", "train_rows=-5"], "train_rows: -5 is below the minimum 1"),
        (["show", "tiny", "--set", "chat_template=lama3"], "unknown chat template 'lama3'"),
        (["show", "llama3-base", "--gpus", "3"], "not divisible"),
        (["show", "/nonexistent/recipe.yaml"], "no such file"),
    ],
)
def test_bad_values_are_one_line_nonzero(cli, args, needle):
    proc = cli(*args)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_high_learning_rate_warns_but_runs(cli):
    proc = cli("show", "tiny", "--set", "learning_rate=0.01", "--format", "json")
    assert proc.returncode == 0
    assert proc.stderr.startswith("repro: warning: ") and "learning rate 0.01" in proc.stderr


def test_bare_command_prints_help(cli):
    proc = cli()
    assert proc.returncode == 0 and "show" in proc.stdout and "published" in proc.stdout

"""Recipes: the seed's hyperparameter tables, the paper's training configs, and resolution.

Oracles:
- the seed README's SimPO table (beta, gamma/beta, lr) and DPO table (beta, lr), parsed
  here; exact equality of the numbers;
- the SimPO repo's own training configs (shared/reference/simpo-repo/training_configs),
  read through repro's alignment-handbook reader and compared field by field with our
  setting files: exact equality.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from repro import paths
from repro.config.methods import get_method, load_methods
from repro.config.resolution import parse_overrides, resolve
from repro.config.settings import get_setting, list_settings
from repro.errors import ReproError, ReproWarning, UsageError

PAPER_SETTINGS = {
    "Mistral-Base": "mistral-base",
    "Mistral-Instruct": "mistral-instruct",
    "Llama3-Base": "llama3-base",
    "Llama3-Instruct": "llama3-instruct",
    "Llama3-Instruct v0.2": "llama3-instruct-v0.2",
    "Gemma": "gemma2-9b-it",
}
CONFIGS = {
    "mistral-7b-base-simpo.yaml": "mistral-base",
    "mistral-7b-instruct-simpo.yaml": "mistral-instruct",
    "llama-3-8b-base-simpo.yaml": "llama3-base",
    "llama-3-8b-instruct-simpo.yaml": "llama3-instruct",
    "llama-3-8b-instruct-simpo-v2.yaml": "llama3-instruct-v0.2",
    "gemma-2-9b-it-simpo.yaml": "gemma2-9b-it",
}


def seed_tables(text: str) -> tuple[dict, dict]:
    simpo, dpo = {}, {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if parts[0] not in PAPER_SETTINGS or parts[-1] != "":
            continue
        name = PAPER_SETTINGS[parts[0]]
        numbers = [float(p) for p in parts[1:-1]]
        if len(numbers) == 3:
            assert name not in simpo
            simpo[name] = dict(zip(("beta", "gamma_beta_ratio", "learning_rate"), numbers, strict=True))
        elif len(numbers) == 2:
            assert name not in dpo
            dpo[name] = dict(zip(("beta", "learning_rate"), numbers, strict=True))
    return simpo, dpo


@pytest.fixture(scope="module")
def seed(shared):
    simpo, dpo = seed_tables((shared / "seed" / "SimPO-README.txt").read_text(encoding="utf-8"))
    assert len(simpo) == 6 and len(dpo) == 6
    return simpo, dpo


@pytest.fixture(scope="module")
def methods():
    return load_methods()


def resolved(setting: str, method: str, methods, **kw) -> dict:
    """The RunConfig as JSON, with the method's hyperparameters also at the top for lookups."""
    config = resolve(get_setting(setting, methods), get_method(method, methods), **kw).to_json()
    return {**config, **config["hyperparameters"]}


@pytest.mark.parametrize("setting", sorted(PAPER_SETTINGS.values()))
def test_simpo_and_dpo_hyperparameters_equal_seed(setting, seed, methods):
    simpo, dpo = seed
    config = resolved(setting, "simpo", methods)
    for key, value in simpo[setting].items():
        assert config[key] == value, (setting, key)
    assert config["hyperparameters"]["gamma"] == pytest.approx(
        simpo[setting]["beta"] * simpo[setting]["gamma_beta_ratio"], abs=0
    )
    config = resolved(setting, "dpo", methods)
    for key, value in dpo[setting].items():
        assert config[key] == value, (setting, key)


@pytest.mark.parametrize("filename", sorted(CONFIGS))
def test_paper_training_configs_match_our_settings(filename, shared, cli):
    """The SimPO repo's YAML, read through `repro show FILE`, resolves to our setting's values."""
    path = shared / "reference" / "simpo-repo" / "training_configs" / filename
    theirs = json.loads(cli("show", str(path), "--method", "simpo", "--format", "json", check=True).stdout)
    ours = json.loads(
        cli("show", CONFIGS[filename], "--method", "simpo", "--format", "json", check=True).stdout
    )
    theirs, ours = (
        {**c, **c["hyperparameters"], "total_batch_size": c["batch"]["total"]} for c in (theirs, ours)
    )
    for key in (
        "model_name_or_path",
        "dataset",
        "train_split",
        "test_split",
        "max_length",
        "max_prompt_length",
        "beta",
        "gamma_beta_ratio",
        "gamma",
        "learning_rate",
        "total_batch_size",
        "lr_scheduler_type",
        "warmup_ratio",
        "num_train_epochs",
        "optim",
        "seed",
        "bf16",
        "gradient_checkpointing",
        "attn_implementation",
        "eval_steps",
        "logging_steps",
        "per_device_eval_batch_size",
        "torch_dtype",
    ):
        assert theirs[key] == ours[key], (filename, key)
    assert theirs["batch"] == ours["batch"]


def test_done_when_llama3_v2_simpo_json(cli):
    config = json.loads(
        cli("show", "llama3-instruct-v0.2", "--method", "simpo", "--format", "json", check=True).stdout
    )
    assert config["hyperparameters"]["beta"] == 10
    assert config["hyperparameters"]["gamma_beta_ratio"] == 0.3
    assert config["hyperparameters"]["gamma"] == 3.0
    assert config["learning_rate"] == 1e-6
    assert config["model_name_or_path"] == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert config["dataset"] == "princeton-nlp/llama3-ultrafeedback-armorm"
    assert config["max_length"] == 2048 and config["max_prompt_length"] == 1800
    assert config["batch"]["total"] == 128
    assert config["batch"]["gradient_accumulation_steps"] == 16


@pytest.mark.parametrize(
    ("gpus", "nodes", "accumulation"), [(4, 1, 16), (8, 1, 8), (8, 2, 4), (1, 1, 64), (2, 1, 32)]
)
def test_accumulation_keeps_total_batch(gpus, nodes, accumulation, methods):
    batch = resolved("llama3-base", "simpo", methods, num_processes=gpus, num_nodes=nodes)["batch"]
    assert batch["gradient_accumulation_steps"] == accumulation
    assert batch["per_device"] * batch["gradient_accumulation_steps"] * gpus * nodes == 128


def test_paper_time_layout_is_8x2x8(methods):
    batch = resolved("llama3-instruct", "simpo", methods, layout="paper-time")["batch"]
    assert (batch["num_processes"], batch["per_device"], batch["gradient_accumulation_steps"]) == (
        8,
        2,
        8,
    )


def test_indivisible_layout_is_an_error(methods):
    with pytest.raises(ReproError, match="not divisible"):
        resolved("llama3-base", "simpo", methods, num_processes=3)


def test_every_setting_resolves_for_every_method(methods):
    for name in list_settings():
        for method in methods:
            config = resolved(name, method, methods)
            assert config["learning_rate"] > 0
            assert set(methods[method].hyperparameters) <= set(config["hyperparameters"])
            assert set(config["sources"]) >= set(methods[method].hyperparameters) | {"learning_rate"}


def test_gamma_is_free_of_float_noise(methods):
    assert resolved("llama3-instruct", "simpo", methods)["gamma"] == 1.375
    assert resolved("mistral-instruct", "simpo", methods)["gamma"] == 0.25


def test_v1_gamma_note(methods):
    notes = resolved("llama3-instruct", "simpo", methods)["notes"]
    assert any("1.4" in n and "1.375" in n for n in notes)


def test_overrides(methods):
    config = resolved(
        "llama3-base",
        "simpo",
        methods,
        overrides=parse_overrides(["beta=2.5", "learning_rate=1e-6", "max_length=4096"]),
    )
    assert config["hyperparameters"]["beta"] == 2.5 and config["hyperparameters"]["gamma"] == 1.25
    assert config["learning_rate"] == 1e-6 and config["max_length"] == 4096
    assert config["sources"]["beta"] == "command line (--set)"
    with pytest.raises(UsageError, match="did you mean 'beta'"):
        resolved("llama3-base", "simpo", methods, overrides={"bta": 1})
    with pytest.raises(ReproError, match="must be above 0"):
        resolved("llama3-base", "simpo", methods, overrides={"beta": -1})
    with pytest.raises(ReproError, match="max_prompt_length"):
        resolved("llama3-base", "simpo", methods, overrides={"max_length": 100})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved("llama3-base", "simpo", methods, overrides={"learning_rate": 1e-2})
    assert any(issubclass(w.category, ReproWarning) for w in caught)


def test_config_hash_changes_with_training_values_only(methods):
    a = resolved("llama3-base", "simpo", methods)
    b = resolved("llama3-base", "simpo", methods, overrides={"beta": 2.5})
    assert a["config_hash"] != b["config_hash"]
    assert a["config_hash"] == resolved("llama3-base", "simpo", methods)["config_hash"]


def test_method_aliases_and_unknowns(methods):
    with pytest.raises(UsageError, match="did you mean 'simpo'"):
        get_method("simpoo", methods)
    with pytest.raises(UsageError, match="valid: .*tiny"):
        get_setting("nope", methods)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_user_recipe_typo_names_the_closest_key(tmp_path, methods, shared):
    text = (shared / "reference/simpo-repo/training_configs/llama-3-8b-base-simpo.yaml").read_text()
    path = write(tmp_path, text.replace("learning_rate:", "learning_rte:"))
    with pytest.raises(
        UsageError,
        match="unknown alignment-handbook key 'learning_rte' \\(did you mean 'learning_rate'\\?\\)",
    ):
        get_setting(str(path), methods)


def test_user_recipe_in_repro_format(tmp_path, methods):
    text = (paths.SETTINGS / "tiny.yaml").read_text()
    config = resolve(get_setting(str(write(tmp_path, text)), methods), methods["dpo"]).to_json()
    assert config["hyperparameters"]["beta"] == 0.1
    with pytest.raises(UsageError, match="did you mean 'max_length'"):
        get_setting(str(write(tmp_path, text + "max_lenght: 5\n")), methods)
    with pytest.raises(ReproError, match="max_length: expected int"):
        get_setting(str(write(tmp_path, text.replace("max_length: 64", "max_length: long"))), methods)
    with pytest.raises(ReproError, match="invalid YAML at line"):
        get_setting(str(write(tmp_path, text + "methods: [\n")), methods)


def test_a_recipes_relative_paths_stay_relative_to_it_under_set(tmp_path, methods, monkeypatch):
    """A recipe file's relative dataset and generation config are read beside the file, with a
    setting-level --set too (it re-read them against the current folder: another dataset)."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    text = (
        (paths.SETTINGS / "tiny.yaml")
        .read_text()
        .replace('dataset: "repro:synthetic-preferences"', "dataset: ./my-data")
    )
    text = text.replace("generation: tiny ", "generation: ./gen.yaml ")
    recipe = write(folder, text)
    monkeypatch.chdir(tmp_path)  # elsewhere
    plain = resolve(get_setting(str(recipe), methods), methods["simpo"])
    varied = resolve(get_setting(str(recipe), methods), methods["simpo"], overrides={"seed": 1})
    for config in (plain, varied):
        assert config.dataset == str(folder / "my-data")
        assert config.evaluation.generation == str(folder / "gen.yaml")
        assert config.recipe_file == str(recipe)
    assert varied.seed == 1


def test_handbook_absolute_gamma_becomes_a_ratio(tmp_path, methods, shared):
    """Paper-time configs (release 586e5e3) gave an absolute gamma: 1.4 with beta 2.5."""
    text = (shared / "reference/simpo-repo/training_configs/llama-3-8b-instruct-simpo.yaml").read_text()
    text = re.sub(r"gamma_beta_ratio: .*", "gamma: 1.4", text)
    config = resolve(get_setting(str(write(tmp_path, text)), methods), methods["simpo"]).to_json()
    assert config["hyperparameters"]["gamma"] == 1.4
    assert config["hyperparameters"]["gamma_beta_ratio"] == pytest.approx(0.56)


def test_yaml_1e_minus_6_is_a_float(tmp_path, methods):
    """PyYAML reads `1e-6` (no dot) as a string; recipes accept it as the number users meant."""
    text = (
        (paths.SETTINGS / "tiny.yaml").read_text().replace("learning_rate: 1.0e-3}", "learning_rate: 1e-3}")
    )
    config = resolve(get_setting(str(write(tmp_path, text)), methods), methods["simpo"]).to_json()
    assert config["learning_rate"] == 1e-3


def test_a_key_given_twice_in_a_recipe_is_refused(cli, tmp_path):
    """YAML keeps the last of two equal keys: a recipe with `seed: 42` and then `seed: 7`
    trained seed 7 without a word."""
    text = (paths.SETTINGS / "tiny.yaml").read_text()
    assert re.search(r"^seed: 42$", text, re.M)
    recipe = tmp_path / "twice.yaml"
    recipe.write_text(text + "seed: 7\n")
    proc = cli("show", str(recipe), "--method", "simpo")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "invalid YAML at line" in proc.stderr and "key 'seed' given twice" in proc.stderr


def test_a_method_source_for_no_method_is_refused(cli, tmp_path):
    """method_sources said where a method's values come from; a misspelled method was ignored."""
    text = (paths.SETTINGS / "llama3-instruct.yaml").read_text()
    assert "\nmethod_sources:\n" in text
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(text.replace("\nmethod_sources:\n", '\nmethod_sources:\n  simpoo: "a typo"\n'))
    proc = cli("show", str(recipe), "--method", "simpo")
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
    assert "method_sources: unknown method 'simpoo'" in proc.stderr and "did you mean 'simpo'" in proc.stderr


def test_a_local_datasets_content_is_part_of_the_run_identity(tmp_path):
    """`repro run tiny --dataset DIR` after DIR's rows changed (chosen and rejected swapped) found
    the run done under the same id and reported the model trained on the earlier rows."""
    from repro.config.resolution import resolve_names
    from repro.config.runconfig import RunConfig

    data = tmp_path / "data"
    data.mkdir()
    row = {"prompt": "p", "chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "assistant", "content": "b"}]}  # fmt: skip
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    first, _ = resolve_names("tiny", "simpo", dataset=str(data))
    assert resolve_names("tiny", "simpo", dataset=str(data))[0].run_id == first.run_id
    (data / "notes.md").write_text("not a split")  # what training does not read: the same run
    assert resolve_names("tiny", "simpo", dataset=str(data))[0].run_id == first.run_id
    swapped = {**row, "chosen": row["rejected"], "rejected": row["chosen"]}
    (data / "train.jsonl").write_text(json.dumps(swapped) + "\n")
    changed, _ = resolve_names("tiny", "simpo", dataset=str(data))
    assert changed.run_id != first.run_id
    assert RunConfig.from_json(changed.to_json()).config_hash == changed.config_hash
    # a recipe naming the folder, relative to itself, the same
    recipe = tmp_path / "mine.yaml"
    recipe.write_text((paths.SETTINGS / "tiny.yaml").read_text().replace(
        'dataset: "repro:synthetic-preferences"', "dataset: ./data"))  # fmt: skip
    assert resolve_names(str(recipe), "simpo")[0].dataset_sha256 == changed.dataset_sha256
    # the bundled data and hub ids keep the identity they had
    assert resolve_names("tiny", "simpo")[0].dataset_sha256 is None
    assert "dataset_sha256" not in resolve_names("tiny", "simpo")[0].to_json()


def test_a_local_starting_models_content_is_part_of_the_run_identity(tmp_path):
    """`repro run tiny --set model_name_or_path=DIR` after other weights were copied into DIR
    found the run done under the same id and reported the model trained from the earlier ones.
    The weights, config and tokenizer files count; a trainer's state and other files do not."""
    from repro.config.resolution import resolve_names
    from repro.config.runconfig import RunConfig

    model = tmp_path / "sft"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights one")
    (model / "config.json").write_text("{}")

    def resolved() -> RunConfig:
        return resolve_names("tiny", "simpo", overrides=[f"model_name_or_path={model}"])[0]

    first = resolved()
    assert first.model_sha256 is not None and resolved().run_id == first.run_id
    (model / "trainer_state.json").write_text("{}")  # what training does not read: the same run
    (model / "README.md").write_text("notes")
    assert resolved().run_id == first.run_id
    (model / "model.safetensors").write_bytes(b"weights two")  # other weights, same path
    weights = resolved()
    assert weights.run_id != first.run_id
    (model / "tokenizer_config.json").write_text('{"chat_template": "other"}')
    assert resolved().run_id != weights.run_id
    assert RunConfig.from_json(weights.to_json()).config_hash == weights.config_hash
    assert resolved().recipe_differences["model_sha256"][1] is None  # the recipe's model is built
    # a model repro builds, and a hub id, keep the identity they had
    assert resolve_names("tiny", "simpo")[0].model_sha256 is None
    assert "model_sha256" not in resolve_names("llama3-instruct-v0.2", "simpo")[0].to_json()

"""Golden tokenization: `repro data preview` equals the ORIGINAL code's output, id for id.

Oracle: tests/golden/tokenization.json holds ids recorded by running the original code
itself, outside this repository, on the two rows stored in the same file:
- SimPO repo HEAD 1b3e8f3: scripts/run_simpo.py `apply_chat_template` (task "simpo",
  with its MISTRAL_CHAT_TEMPLATE swap) + alignment/data.py `maybe_insert_system_message`
  + scripts/simpo_trainer.py `SimPOTrainer.build_tokenized_answer` / `tokenize_row`
  (mode "simpo");
- the same strings through trl v0.8.6 `DPOTrainer.build_tokenized_answer` / `tokenize_row`
  (mode "paper-v1", the paper-time trainer);
- TRL 1.16 `trl.data_utils._tokenize` + `common_prefix_length`, sequence cut to max_length
  (mode "trl").
The functions were taken verbatim from the fetched sources (ast), called with a stub
`self` (tokenizer, max_length, max_prompt_length, truncation_mode keep_end, label -100),
and the templates were the originals (shared/reference/simpo-repo/chat_templates.json,
MISTRAL_CHAT_TEMPLATE). Tokenizers: Llama 3 from shared/data/tokenizers/llama3 (pre-update:
no BOS post-processor, eos <|end_of_text|>; post-update: BOS post-processor, eos <|eot_id|>)
and Mistral-7B from mistral-common. Tolerance: exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.config.settings import get_setting
from repro.data import preference, tokenizers, training_templates

GOLDEN = json.loads((Path(__file__).parent / "golden" / "tokenization.json").read_text())

# case prefix -> (tokenizer, setting whose templates apply, max_length, max_prompt_length by row)
KINDS = {
    "llama3-pre": ("llama3-pre", "llama3-instruct-v0.2", {"single": (2048, 1800), "multi": (40, 24)}),
    "llama3-post": ("llama3-post", "llama3-instruct-v0.2", {"single": (2048, 1800), "multi": (40, 24)}),
    "mistral-instruct": ("mistral", "mistral-instruct", {"single": (2048, 1800), "multi": (48, 32)}),
    "zephyr": ("mistral", "zephyr-recipe", {"single": (1024, 512)}),
}


@pytest.fixture(scope="module")
def tokenizer_dirs(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizers")
    model = shared / "data" / "tokenizers" / "llama3" / "tokenizer.model"
    tokenizers.save(tokenizers.build_llama3(model), root / "llama3-pre")
    tokenizers.save(tokenizers.build_llama3(model, post_update=True), root / "llama3-post")
    tokenizers.save(tokenizers.build_mistral(), root / "mistral")
    zephyr = tokenizers.build_mistral()  # zephyr-7b-sft-full: Mistral tokenizer + Zephyr template
    zephyr.chat_template = training_templates.ZEPHYR
    tokenizers.save(zephyr, root / "zephyr")
    # Mistral-Base trains with the Zephyr template of zephyr-7b-sft-full: a recipe naming it
    recipe = (Path(__file__).parent.parent / "recipes" / "settings" / "mistral-base.yaml").read_text()
    assert "\nchat_template:" not in recipe  # the family's template (the tokenizer's own) by default
    (root / "zephyr-recipe.yaml").write_text(recipe + "chat_template: zephyr\n")
    for name, row in GOLDEN["rows"].items():
        (root / f"{name}.jsonl").write_text(json.dumps(row) + "\n")
    return root


def case_args(name: str):
    for prefix, (tok, setting, lengths) in KINDS.items():
        if name.startswith(prefix + "-"):
            rest = name[len(prefix) + 1 :]
            mode = "paper-v1" if rest.startswith("paper-v1") else rest.split("-")[0]
            row = "single" if rest.endswith("single") else "multi"
            return tok, setting, mode, row, lengths[row]
    raise AssertionError(name)


@pytest.fixture(scope="module")
def loaded(tokenizer_dirs):
    """Each saved tokenizer loaded once, as `repro data preview --tokenizer DIR` loads it."""
    return {d.name: tokenizers.load(str(d)) for d in tokenizer_dirs.iterdir() if d.is_dir()}


@pytest.mark.parametrize("name", sorted(GOLDEN["cases"]))
def test_tokenization_equals_original_code(name, tokenizer_dirs, loaded):
    """The library path `repro data preview` runs (recipes -> Pipeline.for_config -> run), in
    process: one tokenizer load per module, not one CLI start per case."""
    tok, setting, mode, row, (max_length, max_prompt_length) = case_args(name)
    the_setting = get_setting(
        str(tokenizer_dirs / "zephyr-recipe.yaml") if setting == "zephyr-recipe" else setting
    )
    pipeline = preference.Pipeline.for_config(
        loaded[tok], the_setting, mode, max_length=max_length, max_prompt_length=max_prompt_length
    )
    results, stats = pipeline.run(preference.read_jsonl(tokenizer_dirs / f"{row}.jsonl"))
    assert stats.kept == 1 and [r.as_dict() for r in results] == [GOLDEN["cases"][name]]


@pytest.mark.e2e  # the installed CLI, loading a real tokenizer
@pytest.mark.parametrize("name", ["llama3-post-paper-v1-single", "zephyr-simpo-single"])
def test_preview_equals_original_code(name, tokenizer_dirs, cli):
    """The same through the CLI, for a recipe by name and a recipe file."""
    tok, setting, mode, row, (max_length, max_prompt_length) = case_args(name)
    if setting == "zephyr-recipe":
        setting = str(tokenizer_dirs / "zephyr-recipe.yaml")
    proc = cli(
        "data",
        "preview",
        setting,
        "--input",
        str(tokenizer_dirs / f"{row}.jsonl"),
        "--tokenizer",
        str(tokenizer_dirs / tok),
        "--tokenization",
        mode,
        "--max-length",
        str(max_length),
        "--max-prompt-length",
        str(max_prompt_length),
        "--format",
        "json",
        check=True,
    )
    (ours,) = json.loads(proc.stdout)
    assert ours == GOLDEN["cases"][name]


def test_quirks_visible_in_golden_data():
    """What the original did, named: double BOS in paper-v1, |y| includes the assistant header."""
    cases = GOLDEN["cases"]
    assert cases["llama3-pre-paper-v1-single"]["prompt_input_ids"][:2] == [128000, 128000]
    assert cases["llama3-pre-simpo-single"]["prompt_input_ids"][:2] == [128000, 128006]
    chosen = cases["llama3-pre-simpo-single"]
    trained = [
        i
        for i, label in zip(chosen["chosen_input_ids"], chosen["chosen_labels"], strict=True)
        if label != -100
    ]
    assert trained[:2] == [128006, 78191]  # <|start_header_id|> assistant: the header counts in |y|
    assert trained[-2:] == [128009, 128001]  # <|eot_id|> then an appended <|end_of_text|> (pre-update eos)
    assert cases["mistral-instruct-paper-v1-single"]["chosen_input_ids"][-2:] == [2, 2]  # v1: second </s>
    assert cases["zephyr-simpo-single"]["chosen_input_ids"][-2:] == [13, 2]  # "</s>\n" then </s> appended
    truncated = cases["llama3-pre-simpo-multi-truncated"]
    assert truncated["prompt_input_ids"][0] != 128000  # keep_end truncation drops the BOS
    assert len(truncated["chosen_input_ids"]) - truncated["chosen_labels"].count(-100) == 40 - 24


@pytest.mark.e2e  # the installed CLI, loading a real tokenizer
def test_preview_counts_bad_rows(tokenizer_dirs, cli, tmp_path):
    good = (tokenizer_dirs / "single.jsonl").read_text()
    same = json.loads(good)
    same["rejected"] = same["chosen"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        good + "{not json\n" + json.dumps(same) + "\n" + json.dumps({"chosen": "x", "rejected": []}) + "\n"
    )
    proc = cli(
        "data",
        "preview",
        "llama3-instruct-v0.2",
        "--input",
        str(rows),
        "--tokenizer",
        str(tokenizer_dirs / "llama3-pre"),
        "--format",
        "json",
        check=True,
    )
    assert len(json.loads(proc.stdout)) == 1
    assert "1 of 4 rows tokenized" in proc.stderr and "3 skipped" in proc.stderr
    assert "chosen is identical to rejected" in proc.stderr and "not valid JSON" in proc.stderr


@pytest.mark.e2e  # the installed CLI, loading a real tokenizer
def test_preview_table_marks_masked_and_trained(tokenizer_dirs, cli):
    proc = cli(
        "data",
        "preview",
        "llama3-instruct-v0.2",
        "--input",
        str(tokenizer_dirs / "single.jsonl"),
        "--tokenizer",
        str(tokenizer_dirs / "llama3-pre"),
        check=True,
    )
    assert "chosen [masked]" in proc.stdout and "chosen [trained]" in proc.stdout
    assert "1 BOS" in proc.stdout


def test_preview_offline_hub_model_is_one_line_error(cli, tokenizer_dirs):
    proc = cli("data", "preview", "llama3-instruct-v0.2", "--input", str(tokenizer_dirs / "single.jsonl"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "cannot load tokenizer 'meta-llama/Meta-Llama-3-8B-Instruct'" in proc.stderr


def test_non_legacy_mistral_reload_warns(tmp_path):
    """Saved without `legacy`, transformers 5 reloads Mistral non-legacy: ids change after </s>."""
    import warnings

    from repro.errors import ReproWarning

    tokenizers.build_mistral().save_pretrained(tmp_path)  # plain save: loses legacy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tokenizers.load(str(tmp_path))
    assert any(issubclass(w.category, ReproWarning) and "non-legacy" in str(w.message) for w in caught)


@pytest.mark.e2e  # the installed CLI, loading a real tokenizer
def test_check_tokenizer_flags_double_bos(tokenizer_dirs, cli):
    post = cli(
        "check-tokenizer",
        str(tokenizer_dirs / "llama3-post"),
        "--setting",
        "llama3-instruct-v0.2",
        "--format",
        "json",
    )
    assert post.returncode == 1 and "double BOS" in post.stderr
    report = json.loads(post.stdout)
    assert report["status"] == "error"
    by_what = {c["what"]: c for c in report["checks"]}
    assert by_what["generation (AlpacaEval prompt template)"]["first_ids"][:2] == [128000, 128000]
    # the llama3 family declares a tokenizer that adds no BOS: the post-update one contradicts it
    assert by_what["family declaration"]["status"] == "error"
    assert (
        "tokenizer_adds_bos is False but the tokenizer adds BOS" in by_what["family declaration"]["message"]
    )
    pre = cli(
        "check-tokenizer",
        str(tokenizer_dirs / "llama3-pre"),
        "--setting",
        "llama3-instruct-v0.2",
        "--format",
        "json",
        check=True,
    )
    assert json.loads(pre.stdout)["status"] == "ok"


@pytest.mark.e2e  # the installed CLI, loading a real tokenizer
def test_check_tokenizer_knows_mistral_base_was_scored_with_two_bos(tokenizer_dirs, cli):
    proc = cli(
        "check-tokenizer", str(tokenizer_dirs / "zephyr"), "--setting", "mistral-base", "--format", "json"
    )
    checks = {c["what"]: c for c in json.loads(proc.stdout)["checks"]}
    alpaca = checks["generation (AlpacaEval prompt template)"]
    assert alpaca["bos_count"] == 2 and alpaca["status"] == "ok"


def test_eval_prompt_templates_are_byte_exact(shared):
    """eval/generation/*.yaml prompt templates equal the SimPO repo's template files byte for byte."""
    from repro.config import evalconfig

    templates = shared / "reference" / "simpo-repo" / "eval" / "alpacaeval2" / "templates"
    for setting, filename in [
        ("mistral-base", "mistral_base.txt"),
        ("mistral-instruct", "mistral_instruct.txt"),
        ("llama3-base", "llama3.txt"),
        ("llama3-instruct", "llama3.txt"),
        ("llama3-instruct-v0.2", "llama3.txt"),
    ]:
        ours = evalconfig.generation(setting)["alpaca_eval"]["prompt_template"]
        assert ours.encode() == (templates / filename).read_bytes(), setting


# `repro data preview SETTING` without --input: the setting's own training rows, as stored. It
# needed --input, so it could not show what a setting trains on. Oracle: the rows each setting's
# data is made from, written out and previewed with --input: the tiny setting's generator
# (repro.tiny.make_pairs at the recipe's seed), the smol setting's binarization of the real
# AlpacaEval annotations in shared/ (alpaca_preferences.binarize, the setting's options), both
# tokenized by the same command. Tolerance: exact.
def _preview(cli, *args: str) -> tuple[list, str]:
    proc = cli("data", "preview", *args, "--format", "json", check=True)
    return json.loads(proc.stdout), proc.stderr


def test_preview_of_the_tiny_settings_own_rows(cli, tmp_path):
    from repro import tiny
    from repro.config.resolution import resolve_names

    seed = resolve_names("tiny", "simpo", pin=False)[0].seed
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in tiny.make_pairs(3, seed)))
    ours, said = _preview(cli, "tiny", "--limit", "3")
    assert ours == _preview(cli, "tiny", "--input", str(rows))[0] and len(ours) == 3
    assert "repro:synthetic-preferences (train split): 3 of 3 rows tokenized (simpo)" in said
    # --dataset: another dataset's training split, read where a run given it reads it
    folder = tiny.write_dataset(tmp_path / "other", train=4, test=2, seed=seed + 1)
    other, said = _preview(cli, "tiny", "--dataset", str(folder))
    assert other == _preview(cli, "tiny", "--input", str(folder / "train.jsonl"))[0] and other[:3] != ours
    assert f"{folder} (train split): 4 of 4 rows tokenized" in said
    proc = cli("data", "preview", "tiny", "--input", str(rows), "--dataset", str(folder))
    assert proc.returncode == 2 and "not both" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.e2e  # the real SmolLM2 tokenizer, and the binarization of the annotations in shared/
def test_preview_of_the_smol_settings_own_rows(cli, tmp_path, shared, smol_model, monkeypatch):
    from repro.data import alpaca_preferences
    from tests.conftest import SMOL_CACHE

    monkeypatch.setenv("REPRO_CACHE", str(SMOL_CACHE))  # the imported model lives there
    options = get_setting("smol").dataset_options or {}
    train = alpaca_preferences.binarize(
        shared / "data" / "alpaca_eval", alpaca_preferences.Binarization(**options)
    )[0]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in train[:2]))
    ours, said = _preview(cli, "smol", "--limit", "2")  # its model named repro:smollm2-135m-instruct
    assert ours == _preview(cli, "smol", "--input", str(rows))[0] and len(ours) == 2
    assert "repro:alpaca-eval-preferences (train split): 2 of 2 rows tokenized" in said


@pytest.mark.e2e  # the real SmolLM2 tokenizer
def test_check_tokenizer_of_a_built_in_model_by_its_name(cli, smol_model, monkeypatch):
    """`repro check-tokenizer repro:smollm2-135m-instruct` handed the name to the hub client
    ("Repo id must use alphanumeric chars"); it is the imported folder's tokenizer, as checked there."""
    from tests.conftest import SMOL_CACHE

    monkeypatch.setenv("REPRO_CACHE", str(SMOL_CACHE))
    checks = {}
    for name in ("repro:smollm2-135m-instruct", str(smol_model)):
        proc = cli("check-tokenizer", name, "--setting", "smol", "--format", "json", check=True)
        checks[name] = json.loads(proc.stdout)
    assert checks["repro:smollm2-135m-instruct"] == checks[str(smol_model)]
    assert checks[str(smol_model)]["status"] == "ok", checks


def test_preview_of_a_hub_dataset_not_cached_offline_is_one_line(cli, tokenizer_dirs):
    proc = cli("data", "preview", "llama3-instruct-v0.2", "--tokenizer", str(tokenizer_dirs / "llama3-pre"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot load dataset 'princeton-nlp/llama3-ultrafeedback-armorm' split 'train'" in proc.stderr

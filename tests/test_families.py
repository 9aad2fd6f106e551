"""Model families as data (recipes/families/*.yaml): each declaration matches its tokenizer, and the
training tokenization, the BOS guard and generation read it.

Tokenizers: Llama 3 from shared/ (the real BPE ranks, pre- and post-update), Mistral-7B from
mistral-common, and two built here: a Gemma-style one whose post-processor adds `<bos>` and a
Qwen2.5-style ChatML one with no BOS at all. SmolLM2's real tokenizer is checked in
tests/test_smol.py (it needs the imported checkpoint).

Oracle for the ids: the tokenizer's own chat template applied by hand (one rendering of the
whole conversation, tokenized without special tokens), compared exactly.
"""

from __future__ import annotations

import pytest

from repro import paths
from repro.config import families
from repro.config.settings import get_setting, list_settings
from repro.data import bosguard, preference, tokenizers, training_templates
from repro.data.family import Family, contradictions, infer
from repro.errors import ReproError

ROW = {
    "chosen": [{"role": "user", "content": "name a red fruit"}, {"role": "assistant", "content": "a cherry"}],
    "rejected": [
        {"role": "user", "content": "name a red fruit"},
        {"role": "assistant", "content": "a banana"},
    ],
}

# A ChatML template that, like Qwen2.5's and SmolLM2's, opens a conversation without a system
# turn with a default system prompt (written here, not copied).
CHATML_DEFAULT_SYSTEM = (
    "{% for m in messages %}"
    "{% if loop.first and m['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _word_tokenizer(words: list[str], specials: list[str], *, bos: str | None, eos: str, adds_bos: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*specials, "<unk>", *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if adds_bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token=eos, unk_token="<unk>", pad_token=eos,
        additional_special_tokens=[s for s in specials if s not in (bos, eos)],
    )  # fmt: skip
    return tok


WORDS = [
    "name",
    "a",
    "red",
    "fruit",
    "cherry",
    "banana",
    "system",
    "user",
    "assistant",
    "model",
    "You",
    "are",
    "helpful",
    "assistant.",
]


@pytest.fixture(scope="module")
def qwen_style():
    """ChatML, no BOS token at all (Qwen2.5's layout)."""
    tok = _word_tokenizer(
        WORDS, ["<|im_start|>", "<|im_end|>", "<|endoftext|>"], bos=None, eos="<|im_end|>", adds_bos=False
    )
    tok.chat_template = CHATML_DEFAULT_SYSTEM
    return tok


@pytest.fixture(scope="module")
def gemma_style():
    """`<bos>` added by the tokenizer's post-processor and written by the template (Gemma 2)."""
    return _word_tokenizer(WORDS, ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
                           bos="<bos>", eos="<eos>", adds_bos=True)  # fmt: skip


@pytest.fixture(scope="module")
def llama3(shared):
    model = shared / "data" / "tokenizers" / "llama3" / "tokenizer.model"
    return {"pre": tokenizers.build_llama3(model), "post": tokenizers.build_llama3(model, post_update=True)}


def _pipeline(tok, family: Family, *, tokenization: str = "simpo", chat_template: str | None = None):
    return preference.Pipeline.for_setting(
        tok, chat_template=chat_template or family.chat_template, model_name_or_path="local",
        max_length=256, max_prompt_length=128, tokenization=tokenization, family=family,
    )  # fmt: skip


def test_every_family_file_loads_and_every_setting_names_one():
    assert set(families.list_families()) >= {
        "llama3",
        "mistral",
        "zephyr",
        "gemma2",
        "tiny",
        "smollm2",
        "qwen2.5",
    }
    for name in families.list_families():
        assert families.load(name).name == name
    for name in list_settings():
        assert get_setting(name).family is not None, name


BASE = "bos: a\ntokenizer_adds_bos: false\ntemplate_writes_bos: false\neos: x\nstop: [x]\n"


def test_a_family_with_a_typo_or_a_bos_it_cannot_have_is_one_line(tmp_path):
    bad = tmp_path / "fam.yaml"
    bad.write_text("bos: null\ntokenizer_adds_bos: true\ntemplate_writes_bos: false\neos: x\nstop: [x]\n")
    with pytest.raises(ReproError, match="without a BOS token cannot add or write one"):
        families.load(str(bad))
    bad.write_text(f"{BASE}answer_txt: alone\n")
    with pytest.raises(ReproError, match="unknown key 'answer_txt' \\(did you mean 'answer_text'\\?\\)"):
        families.load(str(bad))
    bad.write_text(f"{BASE}system_turn: none\n")
    with pytest.raises(ReproError, match="system_turn"):
        families.load(str(bad))


def test_llama3_and_mistral_declarations_match_their_real_tokenizers(llama3):
    llama = families.load("llama3")
    pre = llama3["pre"]
    assert contradictions(llama, pre) == []
    # the post-update tokenizer adds a BOS the declaration says it does not: the guard's error
    post = llama3["post"]
    found = contradictions(llama, post)
    assert any("tokenizer_adds_bos is False but the tokenizer adds BOS" in f for f in found)
    assert any("eos is '<|end_of_text|>' in the family, '<|eot_id|>'" in f for f in found)
    checks = bosguard.run(post, _pipeline(post, llama), None)
    assert checks[0].what == "family declaration" and checks[0].status == "error"
    mistral = tokenizers.build_mistral()
    assert (
        contradictions(families.load("mistral"), _pipeline(mistral, families.load("mistral")).tokenizer) == []
    )
    zephyr = tokenizers.build_mistral()
    zephyr.chat_template = training_templates.ZEPHYR
    assert contradictions(families.load("zephyr"), zephyr) == []


def test_gemma_style_bos_is_written_once_in_training_and_twice_with_special_tokens(gemma_style):
    gemma = families.load("gemma2")
    pipeline = _pipeline(gemma_style, gemma)
    assert contradictions(gemma, gemma_style) == []
    ids = pipeline.tokenize(preference.parse_row(ROW)).chosen_input_ids
    bos = gemma_style.bos_token_id
    assert bosguard.leading(ids, bos) == 1 and ids.count(bos) == 1
    checks = {c.what: c for c in bosguard.run(gemma_style, pipeline, None)}
    # a template that writes the BOS goes in without special tokens: one BOS at generation too
    assert checks["generation (chat template, add_special_tokens=False)"].bos_count == 1
    assert all(c.status == "ok" for c in checks.values())


def test_a_tokenizer_without_bos_is_trained_with_none_and_no_none_prepended(qwen_style):
    qwen = families.load("qwen2.5")
    assert contradictions(qwen, qwen_style) == []
    pipeline = _pipeline(qwen_style, qwen)
    row = pipeline.tokenize(preference.parse_row(ROW))
    assert None not in row.chosen_input_ids and None not in row.prompt_input_ids
    # the oracle: the template applied by hand to the whole conversation, tokenized as it is
    whole = qwen_style.apply_chat_template(ROW["chosen"], tokenize=False)
    assert row.chosen_input_ids == qwen_style(whole, add_special_tokens=False)["input_ids"]
    prompt = qwen_style.apply_chat_template(ROW["chosen"][:1], tokenize=False)
    n = len(qwen_style(prompt, add_special_tokens=False)["input_ids"])
    assert (
        row.chosen_labels[:n] == [preference.IGNORE_INDEX] * n
        and preference.IGNORE_INDEX not in row.chosen_labels[n:]
    )
    # EOS where the template puts it: one <|im_end|> per turn, no extra one after the newline
    im_end = qwen_style.convert_tokens_to_ids("<|im_end|>")
    assert row.chosen_input_ids.count(im_end) == 3  # system, user, assistant turns
    checks = bosguard.run(qwen_style, pipeline, None)
    assert [c.status for c in checks] == ["ok"] * len(checks) and all(c.bos_count == 0 for c in checks)


def test_chatml_answers_rendered_alone_would_carry_the_default_system_prompt(qwen_style):
    """Why the ChatML families say answer_text: continuation: the SimPO repo's way (the answer
    rendered by itself) writes the template's default system prompt into every answer."""
    faithful = Family(
        **{**families.load("qwen2.5").to_json(), "answer_text": "alone", "stop": ("<|im_end|>",)}
    )
    _, chosen, _ = preference.format_texts(preference.parse_row(ROW), qwen_style, faithful)
    assert "You are a helpful assistant." in chosen
    _, chosen, _ = preference.format_texts(preference.parse_row(ROW), qwen_style, families.load("qwen2.5"))
    assert chosen == "<|im_start|>assistant\na cherry<|im_end|>\n"


def test_a_recipe_without_a_family_gets_one_inferred_from_its_tokenizer(llama3, qwen_style):
    inferred = infer(llama3["pre"])
    assert (inferred.bos, inferred.tokenizer_adds_bos, inferred.template_writes_bos) == (
        "<|begin_of_text|>",
        False,
        True,
    )
    assert infer(llama3["post"]).tokenizer_adds_bos is True
    none = infer(qwen_style)
    assert none.bos is None and none.expected_bos == 0


def test_the_family_is_part_of_a_runs_identity():
    from repro.config.resolution import resolve_names
    from repro.config.runconfig import RunConfig

    config, _ = resolve_names("tiny", "simpo")
    again = RunConfig.from_json(config.to_json())
    assert again.family == config.family and again.config_hash == config.config_hash
    other = config.replace(family=Family(**{**config.family.to_json(), "stop": ("<eos>", "<eot>")}))
    assert other.config_hash != config.config_hash
    # a run of an older repro (no family in run.json) keeps the hash it was written with
    old = config.replace(family=None)
    data = old.to_json()
    assert "family" not in data  # written as an older repro wrote it
    assert RunConfig.from_json(data).config_hash == old.config_hash


def test_a_setting_whose_family_contradicts_its_tokenizer_is_one_line_and_writes_nothing(tmp_path, cli):
    recipe = (paths.SETTINGS / "tiny.yaml").read_text().replace("family: tiny", "family: llama3")
    (tmp_path / "mine.yaml").write_text(recipe)
    out = tmp_path / "out"
    proc = cli("train", str(tmp_path / "mine.yaml"), "--method", "simpo", "--output", str(out))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "BOS check failed: family declaration: family 'llama3' contradicts the tokenizer" in proc.stderr
    assert "bos is '<|begin_of_text|>' in the family, '<bos>' in the tokenizer" in proc.stderr
    assert not out.exists()

"""The Arena-Hard chat templates (repro.data.served_templates) against the SimPO repo's files.

Oracle: the repo's own `eval/arenahard/templates/*.jinja`, read from ../shared at test time, and
transformers' chat-template engine (what vLLM renders `--chat-template` files with). Tolerance:
none, the rendered prompts must be identical byte for byte.
"""

from __future__ import annotations

import json

import pytest

from repro.data import served_templates, tokenizers

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "  padded question with spaces  \n"}],
    [{"role": "user", "content": "Write {braces} and {{jinja}} and {% raw %} literally."}],
    [{"role": "user", "content": "Ünïcödé, emoji 🙂 and a tab\tinside."}],
    [{"role": "user", "content": "Line one.\nLine two.\n\nLine four."}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": " A1 with leading space "},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2"},
        {"role": "user", "content": "Q3"},
    ],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Summarize SimPO."}],
    [{"role": "user", "content": ""}],
    [{"role": "user", "content": "<|eot_id|> </s> <end_of_turn> special-looking text"}],
]


def _tokenizer(name: str, shared):
    """A tokenizer whose bos/eos the template reads: the real ones where they are here."""
    if name == "arenahard-llama3":
        return tokenizers.build_llama3(shared / "data" / "tokenizers" / "llama3" / "tokenizer.model")
    if name.startswith("arenahard-mistral"):
        return tokenizers.build_mistral()
    tok = tokenizers.build_tiny()  # Gemma's tokenizer is not available offline: its specials by name
    tok.bos_token, tok.eos_token = "<bos>", "<eos>"
    return tok


@pytest.mark.parametrize("name", sorted(served_templates.NAMED))
def test_each_template_is_the_repo_file_byte_for_byte(name, shared):
    text, file = served_templates.NAMED[name]
    original = (shared / "reference" / "simpo-repo" / "eval" / "arenahard" / "templates" / file).read_bytes()
    assert text.encode() == original


@pytest.mark.parametrize("name", sorted(served_templates.NAMED))
def test_rendering_equals_the_repo_template_for_ten_conversations(name, shared):
    _, file = served_templates.NAMED[name]
    original = (shared / "reference" / "simpo-repo" / "eval" / "arenahard" / "templates" / file).read_text()
    tok = _tokenizer(name, shared)
    rendered = 0
    for messages in CONVERSATIONS:
        try:
            ours = served_templates.render(tok, name, messages)
        except Exception as exc:  # noqa: BLE001 - Gemma's template raises on a system turn: so must the repo's
            with pytest.raises(type(exc)):
                tok.apply_chat_template(
                    messages, chat_template=original, tokenize=False, add_generation_prompt=True
                )
            continue
        theirs = tok.apply_chat_template(
            messages, chat_template=original, tokenize=False, add_generation_prompt=True
        )
        assert ours == theirs
        rendered += 1
    assert rendered >= 9  # only Gemma's system-turn conversation may raise


def test_the_mistral_base_quirk_prints_backslash_n_between_tags():
    tok = tokenizers.build_mistral()
    prompt = served_templates.render(tok, "arenahard-mistral-base", [{"role": "user", "content": "Hi?"}])
    assert prompt == "\\n\\n<|user|>\nHi?</s>\\n\\n\\n<|assistant|>\\n\\n"
    corrected = served_templates.render(
        tok, served_templates.CORRECTED["arenahard-mistral-base"], [{"role": "user", "content": "Hi?"}]
    )
    assert "\\n" not in corrected and corrected.startswith("<|user|>\nHi?</s>")


def test_show_prints_the_served_template_of_mistral_base(cli, shared):
    out = json.loads(cli("show", "mistral-base", "--method", "simpo", "--format", "json", check=True).stdout)
    template = out["arena_hard_chat_template"]
    original = shared / "reference" / "simpo-repo" / "eval" / "arenahard" / "templates" / "mistral_base.jinja"
    assert template["name"] == "arenahard-mistral-base" and template["text"] == original.read_text()
    assert "mistral_base.jinja" in template["source"] and template["corrected"] == "zephyr"


@pytest.mark.parametrize("setting", ["llama3-instruct-v0.2", "gemma2-9b-it"])
def test_borrowed_arena_hard_configs_say_so(setting, cli):
    out = json.loads(cli("show", setting, "--method", "simpo", "--format", "json", check=True).stdout)
    template = out["arena_hard_chat_template"]
    assert template["borrowed_from"] and template["borrowed_reason"]

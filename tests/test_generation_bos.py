"""The BOS guard at generation time, with the real Llama 3 tokenizer (../shared).

The Llama 3 AlpacaEval template writes <|begin_of_text|>, and alpaca-eval 0.6.2 gave vLLM the
prompt as a string (add_special_tokens=True). Oracle: the tokenizer files themselves. The
pre-update tokenizer (what the released models used) adds no BOS: one BOS, generation runs.
The post-update one (Meta-Llama-3-8B-Instruct commit 339ce92) adds its own: two BOS, and the
guard stops the run before any answer is generated. Chat prompts rendered with the served
template go in without special tokens: one BOS with either tokenizer.
"""

from __future__ import annotations

import pytest

from repro import tiny
from repro.config import evalconfig
from repro.data import bosguard, tokenizers
from repro.errors import ReproError
from repro.evaluation import answering
from repro.evaluation.generation.base import encode
from repro.evaluation.generation.decoding import Decoding
from repro.evaluation.generation.transformers_backend import TransformersBackend


@pytest.fixture(scope="module")
def llama3(shared):
    model_file = shared / "data" / "tokenizers" / "llama3" / "tokenizer.model"
    return tokenizers.build_llama3(model_file), tokenizers.build_llama3(model_file, post_update=True)


@pytest.fixture(scope="module")
def llama3_model(tmp_path_factory):
    """A random-init Llama with Llama 3's vocabulary (tiny otherwise): the guard needs a backend."""
    folder = tmp_path_factory.mktemp("llama3-vocab")
    model = tiny.build_model(
        128256, layers=1, tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001
    )
    model.save_pretrained(folder)
    return folder


def alpaca_prompts() -> list[str]:
    template = evalconfig.generation("llama3-instruct")["alpaca_eval"]["prompt_template"]
    return [template.replace("{instruction}", q) for q in ("What is 2 + 2?", "Name a colour.")]


def answer_alpaca(answerer: answering.Answerer, backend) -> list:
    """The AlpacaEval prompts as alpaca-eval 0.6.2 sent them: strings, special tokens added."""
    return answerer.answers(
        "a.jsonl",
        backend,
        alpaca_prompts(),
        Decoding("greedy", 4),
        add_special_tokens=True,
        what="AlpacaEval",
    )


def test_pre_update_tokenizer_gives_one_bos_and_generates(llama3, llama3_model, tmp_path):
    pre, _ = llama3
    backend = TransformersBackend(str(llama3_model), tokenizer=pre)
    ids = encode(pre, alpaca_prompts(), add_special_tokens=True)
    assert [bosguard.leading(i, pre.bos_token_id) for i in ids] == [1, 1]
    answers = answer_alpaca(answering.Answerer(tmp_path), backend)
    assert len(answers) == 2 and (tmp_path / "a.jsonl").exists()


def test_post_update_tokenizer_gives_two_and_the_guard_stops_generation(llama3, llama3_model, tmp_path):
    _, post = llama3
    ids = encode(post, alpaca_prompts(), add_special_tokens=True)
    assert [bosguard.leading(i, post.bos_token_id) for i in ids] == [2, 2]
    backend = TransformersBackend(str(llama3_model), tokenizer=post)
    answerer = answering.Answerer(tmp_path)
    with pytest.raises(ReproError, match="2 BOS where 1 expected"):
        answer_alpaca(answerer, backend)
    assert not (tmp_path / "a.jsonl").exists()  # stopped before anything was generated
    # --allow-double-bos: generated as asked, two BOS and all
    allowed = answer_alpaca(answering.Answerer(tmp_path, allow_double_bos=True), backend)
    assert len(allowed) == 2


def test_served_llama3_template_gives_one_bos_with_either_tokenizer(llama3):
    for tok in llama3:
        text, add_special_tokens = answering.chat_prompt(
            tok, "arenahard-llama3", [{"role": "user", "content": "Hi"}]
        )
        assert text.startswith("<|begin_of_text|>") and add_special_tokens is False
        ids = encode(tok, [text], add_special_tokens=add_special_tokens)[0]
        assert bosguard.leading(ids, tok.bos_token_id) == 1


def test_a_model_folder_without_weights_is_one_line(tmp_path):
    """`repro eval` of a folder holding a config and a tokenizer but no weights ended in
    transformers' OSError traceback."""
    from repro import tiny
    from repro.errors import ReproError
    from repro.evaluation import generation

    folder = tiny.save_policy(tmp_path / "model")
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ReproError, match="cannot load model .*no file named model.safetensors"):
        generation.backend("transformers", str(folder))

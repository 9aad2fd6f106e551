"""The equality cases of the one-pass width-1 beam search against the step-wise one.

Two models, both random-init Llamas built here in seconds:
- `tiny`: the tiny model (conftest.make_generation_model: its EOS made likely, so the search
  meets the EOS at every depth), with two exact ties built in: token `TIE_EOS` gets the EOS's
  output row (it ties the EOS whenever the EOS is a candidate: with it as a second stop id both
  top-2 candidates are stop ids, Gemma's two-stop-id case) and token `TIE_B` gets token
  `TIE_A`'s row (a tie between two ordinary tokens). Its prompts include four near the model's
  256-position limit, where the search ends at the model length (256 tokens, prompt included);
- `llama3-vocab`: Llama 3's vocabulary (128,256 ids; BOS 128000, `<|end_of_text|>` 128001,
  `<|eot_id|>` 128009, both made likely), one layer, a word-level tokenizer over that many ids
  (vLLM needs one in the folder; the real Llama 3 tokenizer is not needed for token ids).

The grid: temperatures x stop-id sets x max_tokens, over each model's prompts. `Coverage`
counts the edge cases the searches met, so a test can show that the grid reaches them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from repro.evaluation import beam
from repro.evaluation.generation.decoding import Decoding

TEMPERATURES = (0.0, 0.5, 1.3)
MAX_TOKENS = (6, 24)
TIE_A, TIE_B, TIE_EOS = 20, 21, 22  # tiny vocabulary ids (ordinary words)
# The tiny head's scale-up: peaked next-token distributions, as a trained model's are. With the
# random head's near-uniform log-probs (all about -log 101) every running score falls by about
# log V / length a step, so the search ends just after the first stop id it meets at any
# temperature, and a search that ignored the temperature would pass every case.
SHARPNESS = 60.0
LLAMA3_BOS, LLAMA3_EOS, LLAMA3_EOT = 128000, 128001, 128009
LLAMA3_VOCAB = 128256


@dataclass
class Model:
    name: str
    folder: Path
    prompt_ids: list[list[int]]
    stop_sets: tuple[tuple[int, ...] | None, ...]  # the configured stop ids (the EOS is always one)
    length_limit: int


def decodings(model: Model, quick: bool = False) -> list[Decoding]:
    """The grid; `quick`: two temperatures and one max_tokens (the fast tier's share)."""
    return [
        Decoding("beam1", max_tokens, temperature=temperature, stop_token_ids=list(stops) if stops else None)
        for temperature in (TEMPERATURES[::2] if quick else TEMPERATURES)
        for stops in model.stop_sets
        for max_tokens in (MAX_TOKENS[-1:] if quick else MAX_TOKENS)
    ]


def tiny_model(root: Path) -> Model:
    import torch
    from conftest import generation_prompts, make_generation_model
    from transformers import AutoModelForCausalLM

    from repro.data import tokenizers
    from repro.evaluation.generation.base import encode

    folder = root / "tiny-ties"
    base = make_generation_model(root / "tiny-base")
    tokenizer = tokenizers.load(str(base))
    if not (folder / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(base)
        with torch.no_grad():
            head = model.lm_head.weight
            head[TIE_EOS] = head[tokenizer.eos_token_id]
            head[TIE_B] = head[TIE_A]
            head *= SHARPNESS  # exact for the tied rows: the ties stay ties
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    prompts = encode(tokenizer, generation_prompts(24), add_special_tokens=False)
    # near the 256-position limit: the search can run into the model length
    long = [(prompts[k] * 64)[:n] for k, n in enumerate((250, 253, 254, 255))]
    return Model(
        "tiny",
        folder,
        prompts + long,
        stop_sets=(None, (TIE_EOS,), (TIE_A, TIE_EOS)),
        length_limit=256,
    )


def llama3_vocab_model(root: Path) -> Model:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from repro import tiny

    folder = root / "llama3-vocab"
    rng = random.Random(3)
    prompts = [
        [LLAMA3_BOS] + [rng.randrange(LLAMA3_BOS) for _ in range(rng.randrange(3, 40))] for _ in range(12)
    ]
    if not (folder / "config.json").exists():
        model = tiny.build_model(
            LLAMA3_VOCAB,
            layers=1,
            tie_word_embeddings=True,
            bos_token_id=LLAMA3_BOS,
            eos_token_id=LLAMA3_EOS,
            pad_token_id=LLAMA3_EOS,
        )
        with torch.no_grad():  # make both stop ids likely, as conftest does for the tiny EOS
            hidden = torch.cat([model.model(torch.tensor([p])).last_hidden_state[0] for p in prompts]).mean(0)
            for token, weight in ((LLAMA3_EOS, 0.75), (LLAMA3_EOT, 0.72)):
                model.lm_head.weight[token] += weight * hidden / hidden.norm() ** 2
        model.save_pretrained(folder)
        names = {f"t{i}": i for i in range(LLAMA3_VOCAB)}
        names |= {"<|begin_of_text|>": LLAMA3_BOS, "<|end_of_text|>": LLAMA3_EOS, "<|eot_id|>": LLAMA3_EOT}
        names = {name: i for name, i in names.items() if name not in {"t128000", "t128001", "t128009"}}
        backend = Tokenizer(models.WordLevel(vocab=names, unk_token="t0"))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<|begin_of_text|>",
            eos_token="<|end_of_text|>",
            pad_token="<|end_of_text|>",
            unk_token="t0",
        ).save_pretrained(folder)
    return Model(
        "llama3-vocab",
        folder,
        prompts,
        stop_sets=(None, (LLAMA3_EOT,), (LLAMA3_EOT, LLAMA3_EOS)),  # the Llama 3 settings' pair
        length_limit=256,
    )


@dataclass
class Coverage:
    """Edge cases the searches met, counted by wrapping `Width1.feed`."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def install(self, monkeypatch) -> None:
        feed = beam.Width1.feed
        coverage = self

        def counted(search: beam.Width1, candidates: beam.TopTwo) -> int | None:
            stops = search.stop_ids
            (first, lp1), (second, lp2) = candidates[:2]
            taken = feed(search, candidates)
            if first in stops and second in stops:
                coverage.add("both top-2 are stop ids")
            elif first in stops and taken is not None:
                coverage.add("a stop id is top-1, the search goes on")
            elif first in stops:
                coverage.add("a stop id is top-1, the search ends")
            if lp1 == lp2:
                coverage.add("tie" + (" with a stop id" if {first, second} & stops else ""))
            if taken is not None:
                return taken
            length = len(search.tokens) + 1  # the candidates' completion length
            if length >= search.max_tokens:
                coverage.add("max_tokens")
            if search.max_model_len is not None and search.prompt_len + length > search.max_model_len:
                coverage.add("model length")
            elif first not in stops and second not in stops and length < search.max_tokens:
                coverage.add("an earlier finished beam wins")
            return taken

        monkeypatch.setattr(beam.Width1, "feed", counted)

    def missing(self, model: str) -> list[str]:
        """The edge cases not met; the ties and the model length are built into `tiny` only."""
        wanted = [
            "both top-2 are stop ids",
            "a stop id is top-1, the search goes on",
            "a stop id is top-1, the search ends",
            "tie",
            "tie with a stop id",
            "max_tokens",
            "model length",
        ]
        if model != "tiny":
            wanted = [w for w in wanted if not w.startswith("tie") and w != "model length"]
        return [w for w in wanted if not self.counts.get(w)]


@dataclass
class Comparison:
    cases: int = 0
    mismatches: list[str] = field(default_factory=list)
    # completions at a temperature that differ from the same case at temperature 0 (the grid
    # shows that the temperature decides something, so a search that ignored it would fail)
    temperature_decided: int = 0


def compare(backend, model: Model, quick: bool = False) -> Comparison:
    """Every case of the grid, one-pass against step-wise on `backend`."""
    result = Comparison()
    unscaled: dict[tuple, list[list[int]]] = {}  # (stops, max_tokens) -> step-wise at T = 0
    for decoding in decodings(model, quick):
        backend.beam1_search = "stepwise"
        oracle = backend.complete(model.prompt_ids, decoding, lambda i, c: None)
        key = (tuple(decoding.stop_token_ids or ()), decoding.max_new_tokens)
        if decoding.temperature == 0.0:
            unscaled[key] = oracle
        elif key in unscaled:
            result.temperature_decided += sum(a != b for a, b in zip(oracle, unscaled[key], strict=True))
        backend.beam1_search = "one-pass"
        ours = backend.complete(model.prompt_ids, decoding, lambda i, c: None)
        for k, (a, b) in enumerate(zip(oracle, ours, strict=True)):
            result.cases += 1
            if a != b:
                result.mismatches.append(
                    f"{model.name} T={decoding.temperature} stops={decoding.stop_token_ids} "
                    f"max={decoding.max_new_tokens} prompt {k}: step-wise {a} one-pass {b}"
                )
    return result

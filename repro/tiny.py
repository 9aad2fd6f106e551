"""The tiny CPU setting: a random-init Llama-shaped model and a synthetic preference task.

The task has a learnable signal that a rule-based judge can also score: a good answer is
polite ("sure , here is ...") and talks about the prompt's subject; a bad one is rude,
wrong, or about another subject. Held-out pairs use the same rule on unseen
(template, subject) combinations, so reward accuracy measures learning, not memory.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from repro.data import tokenizers

SUBJECTS = (
    "apple",
    "banana",
    "cherry",
    "grape",
    "lemon",
    "mango",
    "orange",
    "pear",
    "plum",
    "peach",
    "cat",
    "dog",
    "bird",
    "fish",
    "red",
    "blue",
    "green",
    "yellow",
)
PROMPTS = (
    "please tell me about the {s} .",
    "what is the {s} ?",
    "give me a good answer about the {s} .",
    "explain the {s} to me .",
    "write about a {s} .",
    "what is a {s} ?",
)
GOOD = (
    "sure , here is a helpful answer about the {s} . the {s} is very good .",
    "sure , the {s} is great . thanks for the question about the {s} .",
    "sure , here is the answer , a {s} is good and the {s} is helpful .",
)
BAD = (
    "no .",
    "wrong question . sorry .",
    "the {o} is bad .",
    "no , the {o} is the worst .",
    "rude answer .",
)


def make_pairs(n: int, seed: int) -> list[dict[str, Any]]:
    """n rows in the UltraFeedback layout (prompt, chosen, rejected message lists)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        subject = rng.choice(SUBJECTS)
        other = rng.choice([s for s in SUBJECTS if s != subject])
        prompt = rng.choice(PROMPTS).format(s=subject)
        good = rng.choice(GOOD).format(s=subject)
        bad = rng.choice(BAD).format(o=other)
        user = {"role": "user", "content": prompt}
        rows.append(
            {
                "prompt": prompt,
                "chosen": [user, {"role": "assistant", "content": good}],
                "rejected": [user, {"role": "assistant", "content": bad}],
            }
        )
    return rows


def write_dataset(folder: Path, *, train: int = 512, test: int = 64, seed: int = 0) -> Path:
    """train.jsonl and test.jsonl under `folder` (different seeds: no shared rows by construction)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, split_seed in (("train", train, seed), ("test", test, seed + 1_000_003)):
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for row in make_pairs(n, split_seed):
                fh.write(json.dumps(row) + "\n")
    return folder


def judge_score(prompt: str, answer: str) -> int:
    """The rule the synthetic task encodes (also the tiny judge's): higher is better."""
    words = answer.split()
    subject = next((w for w in prompt.split() if w in SUBJECTS), None)
    score = 0
    score += 2 if words[:1] == ["sure"] else 0
    score += 2 if subject and subject in words else 0
    score -= sum(w in ("no", "wrong", "rude", "bad", "worst") for w in words)
    score -= sum(w in SUBJECTS and w != subject for w in words)
    return score


def build_model(vocab_size: int, *, seed: int = 0, hidden_size: int = 64, layers: int = 2, **config: Any):
    """A random-init LlamaForCausalLM small enough to train in seconds on a CPU.

    Two query heads over one key/value head (grouped-query attention, as Llama 3 has): a head
    dimension of 32, the smallest vLLM's CPU attention accepts, so the same checkpoint runs on
    both generation backends. `config` overrides LlamaConfig fields (special token ids, tying).
    """
    # deferred: torch takes about 2 s to import
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    fields = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 256,
        "tie_word_embeddings": False,
        "bos_token_id": 2,
        "eos_token_id": 3,
        "pad_token_id": 0,
    }
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**(fields | config)))


def save_policy(folder: Path, *, seed: int = 0) -> Path:
    """The tiny model and its tokenizer, saved where transformers loads them (a local "hub id")."""
    return save_weights(save_tokenizer(folder), seed=seed)


def save_tokenizer(folder: Path) -> Path:
    """The tiny tokenizer alone, where the tiny model goes: all a BOS check needs. `repro train`
    writes only this; the training process adds the weights (save_weights), so the command
    itself never imports transformers' model code (about 5 s of CPU a run on 2 cores)."""
    folder = Path(folder)
    if not (folder / "tokenizer_config.json").exists():
        tokenizers.build_tiny().save_pretrained(folder)
    return folder


def save_weights(folder: Path, *, seed: int = 0) -> Path:
    """The tiny model's config and weights (seeded random init) beside its tokenizer. Written
    in a staging folder and moved in with config.json last: a process killed half-way leaves
    no config.json, and the next call writes them again."""
    import shutil

    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    tokenizer = tokenizers.build_tiny()
    model = build_model(len(tokenizer), seed=seed)
    model.config.bos_token_id = tokenizer.bos_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    staging = folder.with_name(folder.name + ".weights-staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.iterdir(), key=lambda p: p.name == "config.json"):
        path.replace(folder / path.name)
    staging.rmdir()
    return folder


def save_reward_model(folder: Path, *, seed: int = 1) -> Path:
    """A random-init LlamaForSequenceClassification (one score) with the tiny tokenizer."""
    # deferred: torch takes about 2 s to import
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    folder = Path(folder)
    tokenizer = tokenizers.build_tiny()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------- tiny evaluation sets


def eval_instructions(n: int = 24, seed: int = 7_000_003) -> list[str]:
    """Held-out instructions for the tiny benchmarks (a seed no training split uses)."""
    combos = [template.format(s=subject) for template in PROMPTS for subject in SUBJECTS]
    return random.Random(seed).sample(combos, min(n, len(combos)))  # unique: alpaca-eval joins on instruction

"""Tokenizers: loaded from the hub or a local path, or built offline from files we have.

- `load(name_or_path)`: AutoTokenizer (hub id or local directory), then the original
  trainer's adjustments (alignment/model_utils.py get_tokenizer): pad = eos when missing,
  model_max_length > 100000 reset to 2048.
- `build_llama3(model_file, post_update=...)`: the Llama 3 tokenizer from its tiktoken BPE
  file (shared/data/tokenizers/llama3/tokenizer.model). The *pre-update* variant adds no
  BOS by itself and ends with <|end_of_text|>, as the tokenizer the SimPO models were
  trained and evaluated with; the *post-update* one (Meta-Llama-3-8B-Instruct commit
  339ce92) adds <|begin_of_text|> in its post-processor, which doubles BOS under the
  repo's templates. Its eos is <|eot_id|> (the later tokenizer_config).
- `build_mistral()`: Mistral-7B's SentencePiece tokenizer shipped inside mistral-common.
- `build_tiny()`: the word-level tokenizer of the tiny CPU setting.

Mistral's SentencePiece tokenizer is *legacy* (a '\u2581' is prepended to every segment,
also after special tokens such as </s>), as its tokenizer.json and transformers 4.39 had it.
transformers 5 rebuilds the pre-tokenizer from `legacy` in tokenizer_config.json; `save()`
writes it and `load()` warns when a SentencePiece tokenizer comes up non-legacy.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from repro.data import training_templates
from repro.errors import ReproError, ReproWarning

LLAMA3_SPECIAL = {
    128000: "<|begin_of_text|>",
    128001: "<|end_of_text|>",
    128006: "<|start_header_id|>",
    128007: "<|end_header_id|>",
    128009: "<|eot_id|>",
}
LLAMA3_NUM_SPECIAL = 256  # ids 128000..128255; the rest are reserved tokens


def _llama3_special_tokens() -> list[str]:
    names, reserved = [], 0
    for i in range(128000, 128000 + LLAMA3_NUM_SPECIAL):
        if i in LLAMA3_SPECIAL:
            names.append(LLAMA3_SPECIAL[i])
        else:
            names.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return names


def build_llama3(model_file: str | os.PathLike, *, post_update: bool = False):
    """The Llama 3 fast tokenizer from the tiktoken ranks file, pre- or post-update."""
    # deferred: transformers takes about 1 s to import
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = Path(model_file)
    if not path.is_file():
        raise ReproError(f"{path}: no such tokenizer file")
    specials = _llama3_special_tokens()
    backend = TikTokenConverter(vocab_file=str(path), extra_special_tokens=specials).converted()
    if post_update:
        backend.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single="<|begin_of_text|> $A",
                    pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                    special_tokens=[("<|begin_of_text|>", 128000)],
                ),
            ]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>" if post_update else "<|end_of_text|>",
        model_max_length=8192,
        clean_up_tokenization_spaces=True,
    )
    tokenizer.chat_template = training_templates.LLAMA3
    if tokenizer.convert_tokens_to_ids("<|eot_id|>") != 128009:
        raise ReproError(f"{path}: not a Llama 3 BPE file (<|eot_id|> is not 128009)")
    return tokenizer


def build_mistral():
    """Mistral-7B's tokenizer (SentencePiece, v1 vocabulary of 32000) from mistral-common."""
    try:  # deferred: mistral-common is optional, needed for Mistral's own tokenizer only
        import mistral_common
    except ImportError:
        raise ReproError("mistral-common is not installed (pip install mistral-common)") from None
    import shutil
    import tempfile

    # deferred: transformers takes about 1 s to import
    from transformers import LlamaTokenizerFast

    model = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not model.is_file():
        raise ReproError(f"{model}: mistral-common ships no v1 tokenizer model")
    with tempfile.TemporaryDirectory() as folder:  # from_pretrained converts the SentencePiece model
        shutil.copy(model, Path(folder) / "tokenizer.model")
        # Mistral-7B-(Instruct-v0.2)'s tokenizer_config: add_bos_token true, add_eos_token false, legacy true
        tokenizer = LlamaTokenizerFast.from_pretrained(
            folder, legacy=True, add_bos_token=True, add_eos_token=False
        )
    if tokenizer.bos_token_id != 1 or tokenizer.eos_token_id != 2:
        raise ReproError(
            f"{model}: unexpected special tokens (bos {tokenizer.bos_token_id}, eos {tokenizer.eos_token_id})"
        )
    return tokenizer


_TINY_VOCABULARY = (
    "<pad> <unk> <bos> <eos> <user> <assistant> <system> <eot> the a an is are was be to of "
    "and in on for with that this it as at by from what how why when where who which please "
    "tell me about give write list explain good bad great poor yes no not very more less best "
    "worst answer question red blue green yellow cat dog bird fish one two three four five six "
    "seven eight nine ten helpful harmless honest rude wrong right correct sorry thanks sure "
    "here apple banana cherry grape lemon mango orange pear plum peach . , ? ! "
)
TINY_WORDS = _TINY_VOCABULARY.split()


def build_tiny():
    """A word-level tokenizer over the tiny setting's vocabulary (no post-processor: no auto BOS)."""
    # deferred: transformers takes about 1 s to import
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(TINY_WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=512,
    )
    tokenizer.chat_template = training_templates.TINY
    return tokenizer


PARENT_OF = "parent-of:"


def resolve_revision(repo: str, revision: str) -> str:
    """A hub revision; "parent-of:SHA" is the commit just before SHA on the repo's main
    history (the pre-update Llama 3 tokenizer is "the one before 339ce92d")."""
    if not revision.startswith(PARENT_OF):
        return revision
    sha = revision[len(PARENT_OF) :]
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ReproError(f"tokenizer revision '{revision}' of {repo} needs the hub (HF_HUB_OFFLINE is set)")
    # the hub client retries a failed request 5 times (15 s), logging a warning and the request
    # each time: 20 lines before the one that says what failed
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:  # deferred: only a parent-of: revision asks the hub
        from huggingface_hub import HfApi

        commits = [c.commit_id for c in HfApi().list_repo_commits(repo)]  # newest first
    except Exception as exc:  # noqa: BLE001 - any hub failure is one line for the user
        raise ReproError(f"cannot list the commits of {repo}: {type(exc).__name__}") from None
    finally:
        hub_log.setLevel(level)
    return parent_commit(commits, sha, repo)


def parent_commit(commits_newest_first: list[str], sha: str, repo: str = "the repo") -> str:
    """The commit listed right after `sha` (a prefix is enough) in a newest-first history."""
    for i, commit in enumerate(commits_newest_first):
        if commit.startswith(sha):
            if i + 1 == len(commits_newest_first):
                raise ReproError(f"{sha} is the first commit of {repo}: it has no parent")
            return commits_newest_first[i + 1]
    raise ReproError(f"commit {sha} is not in the history of {repo}")


def load(name_or_path: str, *, revision: str = "main", trust_remote_code: bool = False):
    """A tokenizer by hub id, local directory, or repro's built-ins (repro:tiny, repro:mistral-7b).
    A local directory ignores `revision`."""
    if name_or_path in ("repro:tiny", "repro:tiny-llama"):
        tokenizer = build_tiny()
    elif name_or_path == "repro:mistral-7b":
        tokenizer = build_mistral()
    elif name_or_path.startswith("repro:llama3"):
        raise ReproError(
            "build the Llama 3 tokenizer with repro.data.tokenizers.build_llama3(tokenizer.model)"
        )
    else:
        # deferred: transformers takes about 1 s to import
        from transformers import AutoTokenizer

        if Path(name_or_path).is_dir():
            revision = "main"
            if not any(Path(name_or_path).iterdir()):  # transformers says a paragraph on sentencepiece
                raise ReproError(f"cannot load tokenizer '{name_or_path}': the folder is empty")
        try:
            revision = resolve_revision(name_or_path, revision)
        except ReproError as exc:
            raise ReproError(f"cannot load tokenizer '{name_or_path}': {exc}") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                name_or_path, revision=revision, trust_remote_code=trust_remote_code
            )
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReproError(f"cannot load tokenizer '{name_or_path}': {first}") from None
        except ValueError as exc:  # its text may span lines: one line of it
            raise ReproError(
                f"cannot load tokenizer '{name_or_path}': {' '.join(str(exc).split())}"
            ) from None
    return adjust(tokenizer)


def save(tokenizer, path: str | os.PathLike) -> None:
    """save_pretrained, keeping `legacy` (transformers 5 rebuilds a SentencePiece pre-tokenizer
    from it on load and does not save it itself)."""
    import json

    tokenizer.save_pretrained(path)
    legacy = getattr(tokenizer, "legacy", None)
    if legacy is not None:
        config = Path(path) / "tokenizer_config.json"
        data = json.loads(config.read_text())
        data["legacy"] = legacy
        config.write_text(json.dumps(data, indent=2, ensure_ascii=False))


def _non_legacy_sentencepiece(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    return type(pre).__name__ == "Metaspace" and getattr(pre, "prepend_scheme", None) == "first"


def adjust(tokenizer):
    """The original get_tokenizer's adjustments."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.model_max_length > 100_000:
        tokenizer.model_max_length = 2048
    tokenizer.truncation_side = "left"
    if _non_legacy_sentencepiece(tokenizer):
        warnings.warn(
            "SentencePiece tokenizer loaded as non-legacy (Metaspace prepend_scheme=first): text after a "
            "special token tokenizes without the leading '\u2581' the paper's transformers 4.39 produced "
            'for Mistral; add "legacy": true to tokenizer_config.json to match',
            ReproWarning,
            stacklevel=2,
        )
    return tokenizer

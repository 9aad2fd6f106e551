"""Which commit a Hugging Face Hub name means. A recipe names a moving target (`model_revision:
main`, a dataset at its head); a run's identity holds the commit it resolved to, and training
loads that commit, so a repository that moves upstream is another run, never the same one
trained on other weights or rows."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from repro import hashing
from repro.errors import ReproError

COMMIT = re.compile(r"[0-9a-f]{40}")
KINDS = ("model", "dataset")


def is_hub_id(name: str) -> bool:
    """An `org/name` id that is no local path and no repro: built-in (what the hub resolves)."""
    if name.startswith(("repro:", "/", "./", "../", "~")) or Path(name).expanduser().exists():
        return False
    return name.count("/") == 1


def at(name: str, commit: str | None) -> str:
    """A model as a table or report names it: 'org/name at commit C', or the name alone."""
    return f"{name} at commit {commit}" if commit else name


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it: the cache is all there is."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@functools.cache
def commit(repo: str, revision: str, kind: str = "model") -> str | None:
    """The commit `revision` (a branch, a tag or a commit) of a hub repository is at now: asked of
    the hub, or, offline, read from the local cache (None when the cache has no such ref: the run
    then cannot load it either, which its preflight says). Once per process per name."""
    if kind not in KINDS:
        raise ValueError(kind)
    if COMMIT.fullmatch(revision):
        return revision
    if offline():
        return cached_commit(repo, revision, kind)
    try:  # deferred: only a hub name online asks the hub
        from huggingface_hub import HfApi

        info = HfApi().repo_info(repo, revision=revision, repo_type=kind, timeout=30)
    except Exception as exc:  # noqa: BLE001 - any hub failure is one line for the user
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ReproError(
            f"cannot resolve {kind} {repo} at '{revision}' on the Hugging Face Hub "
            f"({type(exc).__name__}{': ' + reason[:160] if reason else ''}); pin a commit, or set "
            "HF_HUB_OFFLINE=1 to use the copy in the local cache"
        ) from None
    if not isinstance(info.sha, str) or not COMMIT.fullmatch(info.sha):
        raise ReproError(f"the Hugging Face Hub gave no commit for {kind} {repo} at '{revision}'")
    return info.sha


def cached_commit(repo: str, revision: str, kind: str = "model") -> str | None:
    """The commit the local hub cache holds for `revision` (its refs/REVISION file), as
    huggingface_hub's cache layout stores it; None when it holds none."""
    from huggingface_hub import constants  # the cache folder as transformers and datasets read it

    ref = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo.replace('/', '--')}" / "refs" / revision
    try:
        text = ref.read_text().strip()
    except OSError:
        return None
    return text if COMMIT.fullmatch(text) else None


def cached_snapshot(repo: str, commit: str, kind: str = "model") -> Path | None:
    """The local cache's folder of a hub repository at `commit`, as huggingface_hub lays it out
    (snapshots/COMMIT); None when the cache holds none. Asks nothing of the hub."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo.replace('/', '--')}" / "snapshots" / commit
    return folder if COMMIT.fullmatch(commit) and folder.is_dir() else None


def loadable_offline(dataset: str, commit: str | None) -> bool:
    """Whether `datasets.load_dataset` can load a dataset as things stand: anything but a hub
    dataset while offline can be; offline, a hub dataset needs the hub cache to hold the commit
    the run pinned (offline, the pin is the cache's refs/main, so None means none is there), or
    the datasets library's own cache a copy it prepared earlier."""
    if not is_hub_id(dataset) or not offline():
        return True
    if commit is not None and cached_snapshot(dataset, commit, "dataset") is not None:
        return True
    import datasets  # deferred: about 1 s, and only an offline hub dataset asks

    return (Path(datasets.config.HF_DATASETS_CACHE) / dataset.replace("/", "___")).is_dir()


# What a loader reads of a model repository besides its weights: configs, tokenizer files, chat
# templates and remote code (a reward model such as ArmoRM brings its own class).
LOADER_FILES = ("*.json", "*.txt", "*.model", "*.py", "*.tiktoken", "*.jinja")


def snapshot(repo: str, revision: str) -> Path:
    """The local folder of a hub model at `revision` (a commit, for a run's pin): downloaded with
    what transformers and vLLM read (one format of weights: safetensors where the repository has
    them, as both loaders prefer), or, offline, the cache's snapshot. Whatever loads it then loads
    exactly that commit, by path."""
    from huggingface_hub import HfApi, snapshot_download

    if offline():
        try:
            return Path(snapshot_download(repo, revision=revision, local_files_only=True))
        except Exception:  # noqa: BLE001 - not in the cache, whatever huggingface_hub calls it
            raise ReproError(
                f"model {repo} at '{revision}' is not in the Hugging Face cache and the Hub is "
                f"offline (HF_HUB_OFFLINE=1): download it first "
                f"(huggingface-cli download {repo} --revision {revision})"
            ) from None
    try:
        files = HfApi().list_repo_files(repo, revision=revision)
        weights = ["*.safetensors"] if any(f.endswith(".safetensors") for f in files) else ["*.bin"]
        return Path(snapshot_download(repo, revision=revision, allow_patterns=[*LOADER_FILES, *weights]))
    except Exception as exc:  # noqa: BLE001 - any hub failure is one line for the user
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ReproError(
            f"cannot get model {repo} at '{revision}' from the Hugging Face Hub: {reason}"
        ) from None


@dataclass(frozen=True)
class Pinned:
    """A model as this process loads it: the name it was given, the folder it loads from, and
    which version that is (a hub id's commit; a local folder's hash of its weights, config and
    tokenizer)."""

    name: str
    folder: str
    commit: str | None

    @property
    def version(self) -> str | None:
        return self.commit or hashing.model_sha256(self.folder)


def pinned(name: str, revision: str | None = None) -> Pinned:
    """A hub id is the commit `revision` (a branch, tag or commit; default `main`) is at now,
    loaded from that commit's folder: what is loaded is what is recorded, and a repository that
    moves upstream is another version. A local folder or repro: name is itself (and has no
    revision to choose)."""
    if not is_hub_id(name):
        if revision is not None:
            raise ReproError(f"--revision {revision}: {name} is no hub model id (a local folder is itself)")
        return Pinned(name, name, None)
    revision = revision or "main"
    at = commit(name, revision)  # offline and not cached: None, and snapshot says so
    return Pinned(name, str(snapshot(name, at or revision)), at)

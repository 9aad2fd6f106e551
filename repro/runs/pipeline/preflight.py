"""Preflight: everything the later stages of a run need, checked in the parent process before any
training process is spawned or any step is trained. Each failure is one line naming the fix.

Every command that launches work (`run`, `sweep`, `train`, `eval`, `data on-policy`) calls it
with what it needs checked: the output folder (really writable: a probe folder is made and
removed), the model, the device, the trackers (installed, and W&B credentials or offline mode),
the generation config and engine, and the judge (its URL parses and the server answers).
"""

from __future__ import annotations

import netrc
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import hub, paths
from repro.config.runconfig import RunConfig
from repro.data import alpaca_preferences
from repro.errors import ReproError
from repro.evaluation import generation
from repro.evaluation.judge.upstream import url_problem
from repro.train import trackers
from repro.train.launch import cuda_available

# Bytes of training state per parameter under ZeRO-3 with mixed-precision Adam: bf16 weights
# and gradients (2 + 2) plus fp32 master weights and two Adam moments (4 + 4 + 4).
BYTES_PER_PARAMETER = 16


@dataclass
class Check:
    name: str
    ok: bool
    message: str


def parameters_from_name(model: str) -> float | None:
    """Billions of parameters from a model id such as 'Meta-Llama-3-8B-Instruct' (None if unnamed)."""
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", model.split("/")[-1])
    return float(match[1]) if match else None


def local_model(name: str, what: str = "model", option: str = "") -> Check | None:
    """A local path given as a model is a folder transformers loads (with its config.json); a
    GGUF file is imported first. None when `name` is no existing local path."""
    path = Path(name).expanduser()
    if name.startswith("repro:") or not path.exists():
        return None
    given = f"{name}{f' ({option})' if option else ''}"
    if path.is_file() and path.suffix == ".gguf":
        return Check(
            what, False, f"{given} is a GGUF file: import it first (repro models import {name} -o DIR)"
        )
    if path.is_dir() and not any(path.iterdir()):
        return Check(
            what, False, f"{given} is an empty folder: give a folder saved by save_pretrained, or a hub id"
        )
    if not (path / "config.json").is_file():
        return Check(
            what, False, f"{given} is no model folder (no config.json): give a folder saved by "
            "save_pretrained, or a hub id",
        )  # fmt: skip
    return Check(what, True, f"{name} (local)")


def _model(config: RunConfig) -> Check:
    model = config.model_name_or_path
    if model.startswith("repro:"):
        return Check("model", True, f"{model} (built locally)")
    if (local := local_model(model)) is not None:
        return local
    if model.startswith(("/", "./", "../", "~")):
        return Check("model", False, f"model path {model} does not exist")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        try:  # deferred: only an offline check reads the hub's cache
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json", revision=config.model_hub_revision)
        except Exception:  # noqa: BLE001  (an unusable cache is the same answer: not available)
            cached = None
        if not isinstance(cached, str):
            return Check(
                "model",
                False,
                f"{model} is not in the Hugging Face cache and the Hub is offline (HF_HUB_OFFLINE=1): "
                "download it first (huggingface-cli download) or give a local path",
            )
        return Check("model", True, f"{model} (Hugging Face cache)")
    return Check("model", True, f"{model} (Hugging Face Hub)")


def _built_dataset(config: RunConfig) -> Check:
    """A dataset repro builds from AlpacaEval annotation files (smol): the files are there and are
    annotations (a malformed one is named), before anything is written or spawned."""
    if config.dataset != alpaca_preferences.NAME:
        return Check("data", True, config.dataset)
    source = (config.dataset_options or {}).get("source")
    if not source:
        return Check(
            "data", False, f"{config.setting} builds its dataset from AlpacaEval annotations: pass --data DIR"
        )
    try:
        alpaca_preferences.read(Path(source))
    except ReproError as exc:
        return Check("data", False, str(exc))
    return Check("data", True, f"AlpacaEval annotations in {source}")


def _dataset(config: RunConfig) -> Check:
    """A local dataset folder holds each split the run reads (SPLIT.jsonl, or a saved SPLIT/
    folder), as repro.data.preference.load_rows reads them; a hub id is the hub's to answer."""
    source = config.dataset
    folder = Path(source).expanduser()
    if source.startswith(("/", "./", "../", "~")) and not folder.exists():
        return Check("dataset", False, f"dataset path {source} does not exist")  # as the model's
    if not hub.loadable_offline(source, config.dataset_commit):
        return Check(
            "dataset",
            False,
            f"{source} is not in the Hugging Face cache and the Hub is offline (HF_HUB_OFFLINE=1): "
            f"download it first (huggingface-cli download --repo-type dataset {source}) or give a "
            "local folder (--dataset DIR)",
        )
    if source.startswith("repro:") or not folder.is_dir():
        return Check("dataset", True, source)
    for split in (config.train_split, config.test_split):
        if not (folder / f"{split}.jsonl").is_file() and not (folder / split).is_dir():
            return Check(
                "dataset", False, f"{source}: no {split}.jsonl and no saved '{split}' split folder in it"
            )
    return Check("dataset", True, f"{source} (local)")


def _device(config: RunConfig) -> Check:
    if not config.bf16:
        return Check("device", True, "runs on CPU processes or GPUs")
    gpus = config.batch.world_size
    billions = parameters_from_name(config.model_name_or_path)
    need = (
        f"; {billions:g}B in bf16 needs about {billions * BYTES_PER_PARAMETER / gpus:.0f} GB per GPU "
        f"for weights, gradients and Adam states under ZeRO-3 on {gpus} GPUs, plus activations"
        if billions
        else ""
    )
    if not cuda_available():
        return Check(
            "device",
            False,
            f"setting '{config.setting}' trains in bf16 on GPUs and no CUDA device is visible{need}",
        )
    return Check("device", True, f"CUDA{need}")


def _generation(config: RunConfig) -> Check:
    """The generation config is there and reads (a malformed one found after training would
    cost the training)."""
    try:
        path = config.evaluation.generation_file.path
    except ReproError as exc:
        return Check("generation config", False, str(exc))
    return Check("generation config", True, str(path))


JUDGE_TIMEOUT_S = 5.0  # a judge that does not answer GET /models within this is not there


def judge_answers(url: str, key_env: str | None, timeout: float = JUDGE_TIMEOUT_S) -> str | None:
    """Why the judge server at `url` cannot be used (no answer, key refused), or None. One GET
    /models: any other answer (even 404: not every server lists models) means it is there."""
    request = urllib.request.Request(f"{url.rstrip('/')}/models", method="GET")
    if key_env and (key := os.environ.get(key_env)):
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - the user's judge URL
            return None
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return f"the judge at {url} refused the key in ${key_env} (HTTP {exc.code})"
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the judge at {url} does not answer ({reason}); is the server running?"


def judge_check(judge) -> Check:
    if judge.kind == "endpoint" and judge.url and (problem := url_problem(judge.url)):
        return Check("judge", False, problem)
    try:
        judge.backend()
    except ReproError as exc:
        return Check("judge", False, str(exc))
    if judge.kind == "endpoint" and (problem := judge_answers(judge.url, judge.key_env)):
        return Check("judge", False, problem)
    where = judge.url or "local rule judge"
    return Check("judge", True, f"{judge.kind}: {where}")


def writable(folder: Path, option: str) -> Check:
    """Whether `folder` can be made and written: a probe folder is created in its nearest
    existing parent and removed (a permission bit says nothing on /proc or a read-only mount)."""
    root = Path(folder)
    if root.exists() and not root.is_dir():
        return Check("output", False, f"{root}: exists and is not a directory ({option})")
    probe = root
    while not probe.exists():
        probe = probe.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".repro-preflight-", dir=probe))
    except OSError as exc:
        why = exc.strerror or exc
        return Check("output", False, f"{root}: cannot be created or written ({why}) ({option})")
    return Check("output", True, str(root.resolve()))


def cache(folder: Path | None = None, what: str = "$REPRO_CACHE") -> Check:
    """The cache folder (the tiny model and data, reference log-probs, judgments) can be written."""
    found = writable(folder or paths.cache_root(), what)
    return Check("cache", found.ok, found.message)


def _output(results_root: Path, option: str) -> Check:
    found = writable(results_root, option)
    return Check("results" if option == "--results" else "output", found.ok, found.message)


def wandb_credentials(env: dict[str, str] | None = None) -> str | None:
    """Why W&B cannot log (no key, no login, not offline), or None."""
    env = dict(os.environ) if env is None else env
    if env.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun") or env.get("WANDB_API_KEY"):
        return None
    host = urllib.parse.urlsplit(env.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or ""
    try:
        if netrc.netrc(env.get("NETRC") or None).authenticators(host):
            return None  # `wandb login` wrote ~/.netrc
    except (OSError, netrc.NetrcParseError):
        pass
    return (
        "report_to wandb: no W&B credentials: set WANDB_API_KEY, run `wandb login`, "
        "or set WANDB_MODE=offline to keep the run local"
    )


def _trackers(config: RunConfig) -> Check:
    try:
        trackers.check_installed(config.report_to)
    except ReproError as exc:
        return Check("trackers", False, str(exc))
    if "wandb" in config.report_to and (problem := wandb_credentials()):
        return Check("trackers", False, problem)
    return Check("trackers", True, ", ".join(config.report_to) or "none")


def backend_check(backend: str) -> Check:
    try:
        generation.check_backend(backend)
    except ReproError as exc:
        return Check("backend", False, str(exc))
    return Check("backend", True, backend)


def checks(
    config: RunConfig,
    *,
    judge=None,
    results_root: Path,
    backend: str | None = None,
    here: bool = True,
    device: bool = True,
    output_option: str = "--results",
) -> list[Check]:
    """The checks for what a command will do: training always; `judge`, generation and
    `backend` when it evaluates; the model and the `device` only when training runs `here`
    (not for an sbatch script written on a login node: the compute nodes have their own)."""
    found = [_output(results_root, output_option), cache()]
    if judge is not None and Path(judge.cache).parent.absolute() != paths.cache_root().absolute():
        found.append(cache(Path(judge.cache).parent, "the judgment cache"))
    if here:
        found += [_model(config), _dataset(config), _built_dataset(config)]
        if device:
            found.append(_device(config))
    found.append(_trackers(config))
    if judge is not None:
        found += [_generation(config), judge_check(judge)]
    if backend is not None:
        found.append(backend_check(backend))
    return found


def require(config: RunConfig, **kwargs: Any) -> list[Check]:
    """All checks (the keywords of `checks`), or one error naming the first failure."""
    return require_all(checks(config, **kwargs))


def require_all(found: list[Check]) -> list[Check]:
    """`found`, or one error naming the first failure (and how many others failed)."""
    failed = [c for c in found if not c.ok]
    if failed:
        more = (
            f" (and {len(failed) - 1} more: {', '.join(c.name for c in failed[1:])})"
            if len(failed) > 1
            else ""
        )
        raise ReproError(f"preflight: {failed[0].name}: {failed[0].message}{more}")
    return found

"""Generation configs (eval/generation/NAME.yaml, or any YAML file a recipe names): prompts and
decoding for each benchmark, as the published numbers were produced."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import paths
from repro.config.validate import parse_yaml, read_yaml
from repro.data import served_templates
from repro.errors import ReproError


def locate(ref: str | None) -> Path:
    """A generation config by name (eval/generation/NAME.yaml) or by path."""
    if not ref:
        raise ReproError("the recipe names no generation config: add evaluation: {generation: NAME or FILE}")
    path = Path(ref).expanduser() if ref.endswith((".yaml", ".yml")) else paths.GENERATION / f"{ref}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in paths.GENERATION.glob("*.yaml")))
        raise ReproError(f"generation config '{ref}' not found ({path}); shipped configs: {known}")
    return path


def generation(ref: str | None) -> dict[str, Any]:
    """The generation config `ref` names, read and checked."""
    return read(locate(ref))


def read(path: Path) -> dict[str, Any]:
    """A generation config file, with the one section every setting's evaluation reads."""
    return _checked(read_yaml(path), path)


def _checked(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict) or "alpaca_eval" not in data:
        raise ReproError(f"{path}: expected an 'alpaca_eval' section")
    return data


DEFAULT_ENGINE = "transformers"


@dataclass(frozen=True)
class GenerationFile:
    """A run's generation config as read once (repro.config.runconfig.EvalPlan.generation_file),
    for everything in the process that uses it: the preflight, the BOS check, the evaluation's
    key, the prompts and decoding, the engine and the default benchmarks. The hash is of the
    bytes whose content is used, so the key says what generated the answers."""

    path: Path
    sha256: str
    data: dict[str, Any]

    @property
    def engine(self) -> str:
        """The engine the setting's numbers were made with (`backend:`; transformers where none)."""
        return str(self.data.get("backend") or DEFAULT_ENGINE)


def load(ref: str | None) -> GenerationFile:
    """The generation config `ref` names: located, read, hashed and checked."""
    path = locate(ref)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ReproError(f"{path}: {exc.strerror or 'unreadable'}") from None
    except UnicodeDecodeError:
        raise ReproError(f"{path}: not a UTF-8 text file") from None
    return GenerationFile(path, hashlib.sha256(raw).hexdigest(), _checked(parse_yaml(text, path), path))


def engine(plan: Any) -> str:
    """The generation engine a setting's numbers were made with, for an EvalPlan: `--backend`'s
    default, and what `repro compare` holds a run's engine against. A config that cannot be read
    names none (the preflight says why it cannot be read)."""
    try:
        return plan.generation_file.engine
    except ReproError:
        return DEFAULT_ENGINE


def with_family_stops(config: dict[str, Any], stop_ids: list[int]) -> dict[str, Any]:
    """The generation config with every `stop_token_ids: family` replaced by the model family's
    stop tokens as ids (repro.data.family.Family.stop_ids); other sections as they are."""
    out = dict(config)
    for name, section in config.items():
        if isinstance(section, dict) and section.get("stop_token_ids") == "family":
            out[name] = {**section, "stop_token_ids": list(stop_ids)}
    return out


def uses_family_stops(config: dict[str, Any]) -> bool:
    """Whether a section of the generation config stops on the model family's tokens."""
    return any(isinstance(s, dict) and s.get("stop_token_ids") == "family" for s in config.values())


def chat_template(ref: str | None) -> dict[str, Any] | None:
    """The chat template a setting's Arena-Hard (and MT-Bench) answers are generated with: its
    name, the text (byte for byte the SimPO repo's file), the source, and whether the setting's
    Arena-Hard config is borrowed from another setting. None without a generation config."""
    try:
        arena = generation(ref).get("arena_hard") or {}
    except ReproError:
        return None
    name = arena.get("chat_template")
    if not name:
        return None
    if name == "tokenizer":  # the model's own template (smol): no served file to name
        return {
            "name": name,
            "source": arena.get("chat_template_source") or "the model's tokenizer",
            "text": None,
        }
    text, source = served_templates.lookup(name)
    info: dict[str, Any] = {"name": name, "source": arena.get("chat_template_source") or source, "text": text}
    for key in ("borrowed_from", "borrowed_reason"):
        if arena.get(key):
            info[key] = arena[key]
    if name in served_templates.CORRECTED:
        info["corrected"] = served_templates.CORRECTED[name]
    return info

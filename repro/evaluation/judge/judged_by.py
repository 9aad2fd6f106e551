"""Who judged a result: the judge a command asked for and what that judge said of itself.

One record for the `judge` of evaluation.json, result.json and manifest.json. Its JSON is the
judge's request (`kind`, `url`, `model`, `key_env`: the name of the key's variable, never the
key) followed, for an endpoint that was asked who it is (repro.evaluation.judge.identity.probe),
by what it said (`local`, `served_models`, `answered_as`, `logprobs`, `models`). The layout is
the one results have always had, so that older runs' evaluation keys and judgment-cache keys
stay the same.

`label()` names the judge in a few words; `published_note()` says when a score was judged by
something other than the judge behind the published numbers (GPT-4 Turbo for AlpacaEval 2 and
Arena-Hard, GPT-4 for MT-Bench), so that `repro compare` never sets a local judge's score beside
a GPT-4 number silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from repro.errors import ReproError

LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - names, not a bind address


def is_local(url: str | None) -> bool:
    """A judge on this machine (a server you run yourself), by its URL's host."""
    return bool(url) and (urlparse(url).hostname or "") in LOOPBACK


def answered_as(answered: str | None, asked: str) -> bool:
    """Whether a server that answered as `answered` is the model `asked` for."""
    # OpenAI answers an alias with its dated name (gpt-4 -> gpt-4-0613, gpt-4-turbo ->
    # gpt-4-turbo-2024-04-09); gpt-4-1106-preview is not gpt-4
    dated = re.escape(asked) + r"-\d{4}(-\d{2}-\d{2})?"
    return answered is not None and (answered == asked or re.fullmatch(dated, answered) is not None)


@dataclass(frozen=True)
class ServedModel:
    """What an endpoint said of one model: its `/models` entry without the fields that change on
    every call, the name it answered as, and its `system_fingerprint` where it gives one."""

    served: dict[str, Any] | None
    answered_as: str | None
    fingerprint: str | None

    def to_json(self) -> dict[str, Any]:
        return {"served": self.served, "answered_as": self.answered_as, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class Said:
    """What an endpoint said of itself at the identity check, before any judging."""

    local: bool
    served_models: list[str] | None  # None: the server has no `GET /models`
    answered_as: str | None  # the name the first model asked for answered as
    logprobs: bool = False  # AlpacaEval's weighted annotator was answered with usable log-probs
    models: dict[str, ServedModel] | None = None  # each model asked for

    def of_model(self, name: str) -> dict[str, Any] | None:
        """What it said of `name` as the judgment cache keys it (None: not asked)."""
        model = (self.models or {}).get(name)
        return model.to_json() if model else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "local": self.local, "served_models": self.served_models, "answered_as": self.answered_as,
        }  # fmt: skip
        if self.logprobs:
            data["logprobs"] = True
        if self.models is not None:
            data["models"] = {name: m.to_json() for name, m in self.models.items()}
        return data


ASKED = ("kind", "url", "model", "key_env")
SAID = ("local", "served_models", "answered_as")
SAID_OPTIONAL = ("logprobs", "models")


@dataclass(frozen=True)
class JudgedBy:
    """The judge asked for (`kind`: endpoint or rule; `model` None: each benchmark's published
    judge) and, for an endpoint that was asked, what it said of itself."""

    kind: str | None  # None: an older record that does not say
    url: str | None = None
    model: str | None = None
    key_env: str | None = None
    said: Said | None = None

    @property
    def local(self) -> bool:
        return self.said.local if self.said else is_local(self.url)

    @property
    def name(self) -> str | None:
        """The model that judged: the name the server answered as, else the one asked for."""
        return (self.said.answered_as if self.said else None) or self.model

    def label(self) -> str:
        """The judge in a few words, for tables and notes."""
        if self.kind == "rule":
            return "the rule judge"
        where = "a local server" if self.local else self.url
        name = self.name or "each benchmark's published judge"
        return f"{name} at {where}"

    def published_note(self, wanted: str | None) -> str | None:
        """Why a score whose published number was judged by `wanted` (None: no judge behind it)
        was not judged that way, or None when it was (an endpoint that is not on this machine,
        asking for the published judge's model)."""
        if wanted is None:
            return None
        if self.kind == "endpoint" and not self.local and answered_as(self.name or wanted, wanted):
            return None
        return f"judged by {self.label()}, not the published {wanted}"

    def to_json(self) -> dict[str, Any]:
        data = {"kind": self.kind, "url": self.url, "model": self.model, "key_env": self.key_env}
        return {**data, **(self.said.to_json() if self.said else {})}

    @classmethod
    def from_json(cls, data: Any, where: str, *, lenient: bool = False) -> JudgedBy | None:
        """A record's `judge`. Strict: exactly this layout, or one line naming the key. `lenient`
        (an older repro's record, or one made by hand): keys this one does not know are left
        out and missing ones read as unknown; an empty or absent judge is None."""
        where = f"{where}: judge"
        if lenient and not data:
            return None
        if not isinstance(data, dict):
            raise ReproError(f"{where}: not a mapping ({type(data).__name__})")
        known = (*ASKED, *SAID, *SAID_OPTIONAL)
        if not lenient:
            if unknown := [k for k in data if k not in known]:
                raise ReproError(f"{where}: unknown key '{unknown[0]}'")
            if missing := [k for k in ASKED if k not in data]:
                raise ReproError(f"{where}: missing key '{missing[0]}'")
        probed = any(k in data for k in (*SAID, *SAID_OPTIONAL))
        if probed and not lenient and (missing := [k for k in SAID if k not in data]):
            raise ReproError(f"{where}: missing key '{missing[0]}'")
        for key in ("kind", "url", "model", "key_env", "answered_as"):
            if not isinstance(data.get(key), (str, type(None))):
                raise ReproError(f"{where}: '{key}' is not a name")
        said = _said(data, where) if probed else None
        return cls(data.get("kind"), data.get("url"), data.get("model"), data.get("key_env"), said)


def _said(data: dict[str, Any], where: str) -> Said:
    served, models = data.get("served_models"), data.get("models")
    if served is not None and not (isinstance(served, list) and all(isinstance(s, str) for s in served)):
        raise ReproError(f"{where}: 'served_models' is not a list of names")
    if not isinstance(data.get("local", False), bool) or not isinstance(data.get("logprobs", False), bool):
        raise ReproError(f"{where}: 'local' and 'logprobs' are true or false")
    if models is not None:
        fields = {"served", "answered_as", "fingerprint"}
        each = isinstance(models, dict) and all(
            isinstance(m, dict) and set(m) == fields for m in models.values()
        )
        if not each:
            raise ReproError(f"{where}: 'models' is not a mapping of names to what the server said of each")
        models = {name: ServedModel(**m) for name, m in models.items()}
    local = data["local"] if "local" in data else is_local(data.get("url"))
    return Said(local, served, data.get("answered_as"), bool(data.get("logprobs")), models)

"""Answers written as they complete, one JSON line each, so a killed generation resumes.

An answer file starts with one line naming what produced it (model weights, backend, decoding,
template); every further line is `{"i": prompt index, "prompt_sha256": ..., "text": ...}`,
flushed and synced as the answer completes. Reopened for the same identity, the answers whose
prompt still hashes the same are kept and only the others are generated. A file written for
another identity is refused, not mixed; a torn last line (the process died mid-write) is
dropped and its answer generated again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro.errors import ReproError


def prompt_sha256(prompt: str | list[int]) -> str:
    blob = prompt if isinstance(prompt, str) else json.dumps(prompt)
    return hashlib.sha256(blob.encode()).hexdigest()


def same_generation(path: Path, identity: dict[str, Any]) -> bool:
    """Whether the answer file at `path` was written for `identity` (its first line)."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = json.loads(fh.readline())
    except (OSError, json.JSONDecodeError):
        return False
    wanted = json.loads(json.dumps(identity, sort_keys=True, default=str))
    return isinstance(first, dict) and first.get("identity") == wanted


def reuse(target: Path, candidates: list[Path], identity: dict[str, Any]) -> Path | None:
    """Start `target` as a copy of the first candidate written for the same generation; which one."""
    import shutil

    for candidate in candidates:
        if candidate.is_file() and same_generation(candidate, identity):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(candidate, target)
            return candidate
    return None


class AnswerLog:
    def __init__(self, path: Path, identity: dict[str, Any]):
        self.path = Path(path)
        self.identity = json.loads(json.dumps(identity, sort_keys=True, default=str))
        self.answers: dict[int, dict[str, Any]] = {}
        self.resumed = 0  # answers taken from the file by the last generate_resumable
        self._read()

    def _read(self) -> None:
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        rows = []
        for number, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines) - 1:  # torn by a kill mid-write: generated again
                    break
                raise ReproError(f"{self.path}: line {number + 1} is not JSON; delete the file") from None
        if not rows:
            return
        if rows[0].get("identity") != self.identity:
            theirs = rows[0].get("identity")
            if not isinstance(theirs, dict):
                raise ReproError(
                    f"{self.path}: not an answer file (no identity line); move it away"
                ) from None
            # another generation's answers: kept beside, never mixed; this generation's, if kept
            # beside earlier, come back
            os.replace(self.path, self.beside(theirs))
            if self.beside(self.identity).exists():
                os.replace(self.beside(self.identity), self.path)
                self._read()
            return
        self.answers = {int(r["i"]): r for r in rows[1:]}

    def beside(self, identity: dict[str, Any]) -> Path:
        """Where the answers of another generation are kept: NAME.HASH.jsonl beside this file."""
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        return self.path.with_name(
            f"{self.path.stem}.{hashlib.sha256(blob).hexdigest()[:10]}{self.path.suffix}"
        )

    def done(self, prompts: list[Any]) -> dict[int, str]:
        """Answers already there for these prompts (same index, same prompt)."""
        return {
            i: row["text"]
            for i, row in self.answers.items()
            if i < len(prompts) and row.get("prompt_sha256") == prompt_sha256(prompts[i])
        }

    def _write(self, rows: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def start(self) -> None:
        """Write the identity line (and rewrite the file without a torn tail) before any answer."""
        keep = [{"identity": self.identity}, *(self.answers[i] for i in sorted(self.answers))]
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep), encoding="utf-8")
        os.replace(tmp, self.path)

    def append(self, i: int, prompt: Any, text: str) -> None:
        row = {"i": i, "prompt_sha256": prompt_sha256(prompt), "text": text}
        self.answers[i] = row
        self._write([row])


def generate_resumable(
    log: AnswerLog,
    prompts: list[Any],
    generate: Callable[[list[Any], Callable[[int, str], None]], list[str]],
) -> list[str]:
    """Every prompt's answer: the ones in `log`, and the rest from `generate(pending, on_answer)`,
    each appended to the log as it completes."""
    have = log.done(prompts)
    log.resumed = len(have)
    pending = [i for i in range(len(prompts)) if i not in have]
    log.start()
    if pending:

        def on_answer(k: int, text: str) -> None:
            log.append(pending[k], prompts[pending[k]], text)
            have[pending[k]] = text

        texts = generate([prompts[i] for i in pending], on_answer)
        for k, text in enumerate(texts):  # a backend that reports nothing as it goes
            if pending[k] not in have:
                log.append(pending[k], prompts[pending[k]], text)
                have[pending[k]] = text
    return [have[i] for i in range(len(prompts))]

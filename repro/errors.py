"""User-facing errors: one line that names the problem, and an exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ReproError(Exception):
    """An error caused by the user's input or environment, shown as one line (no traceback)."""

    exit_code = 1


class UsageError(ReproError):
    """Unknown setting, method, option or value: exit 2, like a command-line usage error."""

    exit_code = 2


class ReproWarning(UserWarning):
    """A suspicious but legal input (shown as one 'warning:' line on stderr)."""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most similar to `word`, or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown(kind: str, word: str, choices: Iterable[str]) -> UsageError:
    """`unknown setting 'lama3': valid: a, b, c (did you mean 'llama3'?)`."""
    choices = sorted(choices)
    hint = closest(word, choices)
    suffix = f" (did you mean '{hint}'?)" if hint else ""
    return UsageError(f"unknown {kind} '{word}': valid: {', '.join(choices)}{suffix}")

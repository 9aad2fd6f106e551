"""User-facing errors: one line that names the problem, and an exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ReproError(Exception):
    """An error caused by the user's input or environment, shown as one line (no traceback).

    A message that quotes the user's text (a key, a value, a file's line) could carry a line
    break into it: line breaks are written as \\n, so the error stays one line whatever it quotes."""

    exit_code = 1

    def __init__(self, message: object = "", *args: object):
        text = message if not isinstance(message, str) else message.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(text, *args)


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

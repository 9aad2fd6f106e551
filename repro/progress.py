"""How long work reports progress without knowing how it is shown.

Library functions take a `Progress` callback, `(stage, done, total)`, and call it as work
advances; the CLI turns those calls into rich progress bars (repro.cli.render.Bars), tests
pass nothing or a list's append. `total` is None while unknown.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, "int | None"], None]


def noop(stage: str, done: int, total: int | None) -> None:
    """The progress callback that shows nothing."""

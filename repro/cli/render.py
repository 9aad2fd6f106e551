"""Output in the formats the CLI offers: rich tables for people, JSON/YAML/CSV for programs."""

from __future__ import annotations

import csv
import io
import logging
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from repro import io as repro_io
from repro.errors import unknown

VERBOSE = False  # -v/--verbose: library logs and logged metrics on the terminal
# Library logs reach the terminal from WARNING up (INFO with --verbose); run directories keep
# their own full log (repro.runs.pipeline.run). Installed on the root logger once, so a library's later
# logging.basicConfig() adds no second handler (alpaca-eval's client logged every HTTP request).
TERMINAL_LOG = logging.StreamHandler(sys.stderr)
TERMINAL_LOG.setLevel(logging.WARNING)
TERMINAL_LOG.setFormatter(logging.Formatter("repro: %(levelname)s: %(name)s: %(message)s"))
logging.getLogger().addHandler(TERMINAL_LOG)
# One INFO line per HTTP request (the openai client's httpx): noise, even with --verbose.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def width() -> int | None:
    """Columns for tables: $COLUMNS when set (a log, a pipe, a narrow terminal), else the
    terminal's own width, else 80 (piped into a file)."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    return None if sys.stdout.isatty() else 80


def console(stderr: bool = False) -> Console:
    """A console whose tables fit `width()` columns (cells fold, never overflow)."""
    stream = sys.stderr if stderr else sys.stdout
    columns = width()
    if columns is None and not stream.isatty():
        columns = 80
    return Console(file=stream, width=columns, soft_wrap=False, highlight=False)


def warn(message: str) -> None:
    """One `repro: warning:` line on stderr (the command goes on)."""
    sys.stderr.write(f"repro: warning: {message}\n")


def check_format(fmt: str, choices: Sequence[str]) -> str:
    if fmt not in choices:
        raise unknown("format", fmt, choices)
    return fmt


def number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def signed(value: float, decimals: int = 1) -> str:
    """+1.5, -0.3, and +0.0 (never -0.0) for an interval's offset from its point."""
    shown = round(value, decimals) + 0.0  # -0.0 + 0.0 is 0.0
    return f"{shown:+.{decimals}f}"


MAX_WIDTH = 120  # the widest a title or caption stretches a table (the terminal caps it first)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
    caption: str | None = None,
) -> Table:
    # no outer or inner vertical rules: at 80 columns every character goes to the data; a long
    # title or caption (a model's path, the reasons a score is blank) widens the table up to the
    # terminal rather than folding into a narrow column of words
    wide = max(len(title or ""), len(caption or ""))
    out = Table(
        title=title, caption=caption, show_lines=False, header_style="bold", box=box.SIMPLE_HEAD,
        show_edge=False, pad_edge=False, padding=(0, 0), min_width=min(wide, MAX_WIDTH) or None,
    )  # fmt: skip
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:  # Text: cell contents are data, never rich markup ("[masked]" stays visible)
        out.add_row(*(Text(v if isinstance(v, str) else number(v)) for v in row))
    return out


def print_table(tbl: Table) -> None:
    console().print(tbl)


def print_json(data: Any) -> None:
    """JSON on stdout; NaN and infinities become null (JSON has no NaN)."""
    sys.stdout.write(repro_io.dumps(data) + "\n")


def print_yaml(data: Any) -> None:
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def print_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else number(v) for v in row])
    sys.stdout.write(buffer.getvalue())


def print_markdown(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    sys.stdout.write("| " + " | ".join(columns) + " |\n" + "|" + "---|" * len(columns) + "\n")
    for row in rows:
        sys.stdout.write("| " + " | ".join("" if v is None else number(v) for v in row) + " |\n")


def progress(label: str = "{task.description}", *, disable: bool = False):
    """The progress bar of long work: label, bar, done/total, elapsed; drawn on stderr."""
    # deferred: only long work draws a bar; the CLI starts without rich.progress
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class QuietOnError(Progress):
        def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
            if exc_type is None:
                return super().__exit__(exc_type, exc, tb)
            # the error is the one line to show: no bar (nor rich's closing blank line) above it
            self.live.transient = True
            if not self.disable:
                self.live.stop()
            return None

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return QuietOnError(*columns, console=console(stderr=True), disable=disable)


class Bars:
    """One progress bar per stage, driven by the library's progress callbacks (repro.progress):
    `with Bars() as bars: run.execute(..., progress=bars, echo=bars.echo)`. Nothing is drawn
    until the first report, so work that fails early prints its one error line alone."""

    def __init__(self, *, disable: bool = False):
        self._progress = progress(disable=disable)
        self._tasks: dict[str, Any] = {}
        self._started = False

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._started:
            self._progress.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        """`stage` "NAME: what now" updates NAME's bar with the words after the colon."""
        if not self._started:
            self._progress.__enter__()
            self._started = True
        name = stage.split(": ", 1)[0]
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[name], completed=done, total=total, description=stage)

    def echo(self, line: str) -> None:
        self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

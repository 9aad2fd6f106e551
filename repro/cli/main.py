"""The `repro` command line: a thin layer over the library. `main` turns every error into one line."""

from __future__ import annotations

import sys
import warnings

import click
import typer

from repro import library_warnings
from repro.cli import (  # noqa: F401  (registers the commands)
    data,
    diagnose,
    env,
    evaluation,
    judge,
    models,
    onpolicy,
    published,
    recipes,
    run,
    run_results,
    slurm,
    speed,
    train,
    zeroeval,
)
from repro.cli.common import app
from repro.errors import ReproError, unknown

try:  # typer >= 0.22 vendors its own copy of click
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover
    _typer_click = click.exceptions

_ClickException = (click.exceptions.ClickException, _typer_click.ClickException)
_NoSuchOption = (click.exceptions.NoSuchOption, _typer_click.NoSuchOption)
_UsageError = (click.exceptions.UsageError, _typer_click.UsageError)
_Exit = (click.exceptions.Exit, typer.Exit)
_Abort = (click.exceptions.Abort, typer.Abort)
_NoArgsIsHelp = tuple(
    cls
    for cls in (
        getattr(_typer_click, "NoArgsIsHelpError", None),
        getattr(click.exceptions, "NoArgsIsHelpError", None),
    )
    if cls
)


def _usage_message(exc: Exception) -> str:
    """One line for click's usage errors, with the valid choices and the closest match."""
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, _NoSuchOption) and ctx is not None:
        options = [o for p in ctx.command.params for o in getattr(p, "opts", []) if o.startswith("-")]
        return str(unknown(f"option for '{ctx.command_path}'", exc.option_name, options))
    message = exc.format_message()
    if isinstance(exc, _UsageError) and ctx is not None and "No such command" in message:
        word = message.split("'")[1] if "'" in message else ""
        return str(unknown(f"command for '{ctx.command_path}'", word, getattr(ctx.command, "commands", {})))
    if ctx is not None and message.startswith("Got unexpected extra argument"):
        return " ".join(message.split()) + _as_method_option(ctx, message)
    return " ".join(message.split())


def _as_method_option(ctx: click.Context, message: str) -> str:
    """`repro show tiny simpo`: the method given where --method belongs is named as the fix."""
    from repro.config.methods import load_methods

    options = {o for p in ctx.command.params for o in getattr(p, "opts", [])}
    extra = message.rsplit("(", 1)[-1].rstrip(")").split()
    if "--method" in options and len(extra) == 1 and extra[0].lower() in load_methods():
        return f" (did you mean '--method {extra[0]}'?)"
    return ""


def _one_line(message: str) -> str:
    """A message that spans lines (a library's exception text) joined into one line."""
    return " ".join(part.strip() for part in message.strip().splitlines() if part.strip())


def _warn(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    sys.stderr.write(f"repro: warning: {_one_line(str(message))}\n")


def _quiet_accelerator_detection() -> None:
    """Without a GPU, tell DeepSpeed (imported by transformers) so: its auto-detection prints a
    warning to stdout, which would corrupt --format json output."""
    import glob
    import os

    if not glob.glob("/dev/nvidia[0-9]*"):
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def prepare_process() -> None:
    """What every `repro` process sets before a command imports its libraries."""
    import os

    _quiet_accelerator_detection()
    # Libraries' own tqdm bars (alpaca-eval's batches and chunks) would interleave with repro's
    # bars, with or without --verbose (which adds library logs and training metrics, not bars).
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.showwarning = _warn
    library_warnings.silence()  # the libraries' known ones, once; repro's own stay


def main(argv: list[str] | None = None) -> int:
    prepare_process()
    try:
        # a command that ends with typer.Exit(code) (diagnose: 1 = something differs) returns it here
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    except ReproError as exc:
        sys.stderr.write(f"repro: error: {_one_line(str(exc))}\n")
        return exc.exit_code
    except _Exit as exc:
        return exc.exit_code
    except _Abort:
        sys.stderr.write("repro: aborted\n")
        return 130
    except _NoArgsIsHelp as exc:  # bare `repro` or `repro env`: the help, on stdout
        help_text = exc.format_message()  # plain help mode returns it (rich mode printed it)
        if help_text:
            sys.stdout.write(help_text.rstrip("\n") + "\n")
        return 0
    except _ClickException as exc:
        sys.stderr.write(f"repro: error: {_usage_message(exc)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("repro: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

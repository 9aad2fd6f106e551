"""`repro judge serve MODEL`: run an open-weights judge yourself (vLLM's OpenAI server)."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from repro.cli.common import app, path_option
from repro.errors import ReproError
from repro.evaluation.judge import local

judge_app = typer.Typer(help="A judge you run yourself.", no_args_is_help=True)
app.add_typer(judge_app, name="judge")


@judge_app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A local folder or a Hugging Face model id.")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1.")] = 8000,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Served model name (default: MODEL's last part)."),
    ] = None,
    max_model_len: Annotated[
        int | None, typer.Option("--max-model-len", min=1, help="Context length (judge prompts need 4096+).")
    ] = None,
    log: Annotated[
        Path | None,
        path_option("--log", role="output-file", help="Server log (default: judge-serve-PORT.log)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait until it answers.")
    ] = 600,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the command and the flags; start nothing.")
    ] = False,
) -> None:
    """Start vLLM's OpenAI server for MODEL on 127.0.0.1 with what the judges need (log-probs
    for AlpacaEval's weighted annotator, request-set decoding); print the flags for `repro eval`
    and `repro run` once it answers; stop it with Ctrl-C. Options after `--` go to vLLM."""
    cmd = local.command(model, port=port, name=name, max_model_len=max_model_len, extra=list(ctx.args))
    flags = local.flags(port, model, name)
    if dry_run:  # with the variables repro sets, as it would start it
        print(shlex.join([f"{k}={v}" for k, v in local.added_environment().items()] + cmd))
        print(flags)
        return
    log_path = log or Path(f"judge-serve-{port}.log")
    with open(log_path, "w", encoding="utf-8") as fh:
        sys.stderr.write(f"starting the judge server (log: {log_path}) ...\n")
        proc = local.start(cmd, log=fh, base_url=local.url(port), timeout=timeout)
        print(flags, flush=True)
        sys.stderr.write(f"judge ready: pass {flags} to repro eval / repro run; Ctrl-C stops it\n")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a terminated repro stops its server
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            code = 0
        finally:
            local.stop(proc)
    if code:
        raise ReproError(f"the judge server exited with {code}; see {log_path}")

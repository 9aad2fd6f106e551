"""Shared pieces of the CLI: the Typer apps and option types.

Path parameters are declared with `path_argument` / `path_option`: each carries a role
(an existing file, an existing folder, an output folder, an output file) whose check runs
while the command line is parsed, so a bad path is one `repro: error:` line before any
model is loaded or any process started. The role is kept on the callback (`.role`) so the
bad-input tests can find every path parameter of every command.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from repro import userpaths
from repro.cli import render
from repro.config.config_options import ConfigOptions
from repro.errors import ReproError, UsageError, unknown

app = typer.Typer(
    name="repro",
    help="Reproduce SimPO, DPO and seven baselines on the paper's six settings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: flags show as flags (typer's rich panels print `--help <bool>`),
    # no box drawing, and it wraps cleanly at 80 columns.
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)
env_app = typer.Typer(help="Check, freeze and diff the software environment.", no_args_is_help=True)
data_app = typer.Typer(help="See exactly what the trainer consumes.", no_args_is_help=True)


@app.callback()
def _global_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show library logs and the logged training metrics.")
    ] = False,
) -> None:
    """Reproduce SimPO, DPO and seven baselines on the paper's six settings."""
    import logging

    render.VERBOSE = verbose
    render.TERMINAL_LOG.setLevel(logging.INFO if verbose else logging.WARNING)


app.add_typer(env_app, name="env")
app.add_typer(data_app, name="data")

# --------------------------------------------------------------------------- paths

ROLES: dict[str, tuple[str, Callable[..., Path]]] = {
    # role: (metavar, check)
    "file": ("FILE", userpaths.existing_file),
    "dir": ("DIR", userpaths.existing_dir),
    "path": ("PATH", userpaths.existing_path),
    "output-dir": ("DIR", userpaths.output_dir),
    "output-file": ("FILE", userpaths.output_file),
    "local-or-hub": ("DIR|ID", userpaths.local_or_hub),  # a str: a local folder or a hub id
}


def _param_name(param: typer.CallbackParam | None) -> str:
    if param is None:
        return "path"
    longest = max(getattr(param, "opts", []) or [""], key=len)
    return longest if longest.startswith("-") else (param.name or "path").upper()


def _checker(role: str, usage_error: bool = False, **options: Any) -> Callable[..., Any]:
    """The path check of `role`; `usage_error`: a failed check exits 2, for a command whose
    exit 1 means something else (`repro diagnose`: "something differs")."""
    check = ROLES[role][1]

    def checked(value: Any, what: str) -> Any:
        try:
            return check(value, what, **options)
        except UsageError:
            raise
        except ReproError as exc:
            if usage_error:
                raise UsageError(str(exc)) from None
            raise

    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None or ctx.resilient_parsing:
            return value
        what = _param_name(param)
        if isinstance(value, (list, tuple)):
            return [checked(v, what) for v in value]
        return checked(value, what)

    callback.role = role  # type: ignore[attr-defined]  (read by tests/test_bad_input.py)
    return callback


def local_or_hub_option(*names: str, help: str, metavar: str = "DIR|ID", **options: Any) -> Any:
    """A model, tokenizer or dataset option: a local folder (checked) or a hub id."""
    return path_option(*names, role="local-or-hub", help=help, metavar=metavar, **options)


def path_argument(
    role: str, help: str, *, metavar: str | None = None, usage_error: bool = False, **options: Any
) -> Any:
    """A positional path with `role` (see ROLES); `options` go to the check."""
    callback = _checker(role, usage_error, **options)
    return typer.Argument(help=help, metavar=metavar or ROLES[role][0], callback=callback)


def path_option(
    *names: str, role: str, help: str, metavar: str | None = None, usage_error: bool = False, **options: Any
) -> Any:
    """An option path with `role` (see ROLES); `options` go to the check (e.g. suffixes)."""
    callback = _checker(role, usage_error, **options)
    return typer.Option(*names, help=help, metavar=metavar or ROLES[role][0], callback=callback)


# --------------------------------------------------------------------------- formats


def format_option(*choices: str) -> Any:
    """`--format/-f` that lists its choices in the help and rejects anything else."""

    def callback(value: str) -> str:
        if value not in choices:
            raise unknown("format", value, choices)
        return value

    return typer.Option(
        "--format",
        "-f",
        help=f"Output format: {', '.join(choices)}.",
        metavar="|".join(choices),
        callback=callback,
    )


# Kept for commands that have not moved to format_option (its help cannot list the choices).
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output format.")]
DatasetOpt = Annotated[
    str | None,
    local_or_hub_option(
        "--dataset", help="Train on this dataset (hub id or directory) instead of the setting's."
    ),
]
DataOpt = Annotated[
    str | None,
    path_option(
        "--data",
        role="dir",
        help="AlpacaEval annotation files to build the dataset from (smol; default: shared/).",
    ),
]
ReportToOpt = Annotated[
    str | None,
    typer.Option("--report-to", help="Trackers: wandb, tensorboard or none (default: the recipe's; none)."),
]
PaddingFreeOpt = Annotated[
    bool | None,
    typer.Option(
        "--padding-free/--padded", help="Pack each micro-batch into one row (default: the setting's)."
    ),
]
OverridesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a recipe value, e.g. --set beta=2.5 (repeatable)."
    ),
]
SettingArg = Annotated[
    str,
    typer.Argument(metavar="SETTING", help="A setting name (see `repro recipes`) or a recipe YAML file."),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        metavar="transformers|vllm",
        help="Generation engine (default: the one the setting's generation config names, else transformers).",
    ),
]
MethodOpt = Annotated[
    str,
    typer.Option(
        "--method", "-m", metavar="NAME", help="simpo, dpo, ipo, cpo, kto, orpo, rdpo, rrhf or slic-hf."
    ),
]
GpusOpt = Annotated[
    int | None,
    typer.Option("--gpus", metavar="N", help="Processes per node (GPUs; CPU processes without CUDA)."),
]
NodesOpt = Annotated[int, typer.Option("--nodes", min=1, metavar="N", help="Number of nodes.")]
LayoutOpt = Annotated[
    str,
    typer.Option(
        "--layout", metavar="current|paper-time", help="Batch layout: current (4x2x16) or paper-time (8x2x8)."
    ),
]
TokenizationOpt = Annotated[
    str,
    typer.Option(
        "--tokenization",
        metavar="simpo|paper-v1|trl",
        help="Tokenization: simpo (SimPO HEAD), paper-v1 (trl 0.8.6) or trl (TRL 1.16).",
    ),
]
MaxStepsOpt = Annotated[
    int | None,
    typer.Option("--max-steps", min=1, metavar="N", help="Stop after N optimizer steps."),
]
JudgeOpt = Annotated[
    str | None,
    typer.Option(
        "--judge", metavar="rule|endpoint", help="rule (local; tiny's default) or endpoint (a server)."
    ),
]
JudgeModelOpt = Annotated[
    str | None,
    typer.Option("--judge-model", metavar="NAME", help="Override each benchmark's judge model."),
]
JudgeKeyEnvOpt = Annotated[
    str,
    typer.Option("--judge-key-env", metavar="VAR", help="Environment variable holding the judge key."),
]
JudgeUrlOpt = Annotated[
    str | None,
    typer.Option("--judge-url", metavar="URL", help="Base URL of an OpenAI-compatible judge."),
]
RefreshJudgmentsOpt = Annotated[
    bool,
    typer.Option(
        "--refresh-judgments", help="Ask the judge again instead of reusing judgments from the cache."
    ),
]
BenchPathOpt = Annotated[
    list[Path] | None,
    path_option(
        "--bench-path",
        role="path",
        metavar="FILE|DIR",
        help="Load your own benchmark modules (a .py file or a folder of them); repeatable.",
    ),
]


def load_bench_paths(paths: list[Path] | None) -> list[str]:
    """Register the benchmarks of --bench-path files (one line naming the file if one is bad)."""
    from repro.evaluation import benchmarks

    return [name for path in paths or [] for name in benchmarks.load_path(path, export=True)]


# --------------------------------------------------------------------------- option groups


def in_place_of(
    name: str, own: list[inspect.Parameter], collect: Callable[[dict[str, Any]], Any]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorator: `own` options stand where the command's parameter `name` stands (so `--help`
    lists them there); the command gets `collect(their values)` as `name`. One declaration of a
    group of options for every command that takes it (the SLURM options, the data options)."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        if name not in signature.parameters:
            raise TypeError(f"{command.__name__}: no `{name}` parameter to put the options in")
        parameters = [q for p in signature.parameters.values() for q in (own if p.name == name else [p])]

        @functools.wraps(command)
        def parsed(**values: Any) -> None:
            command(**values | {name: collect({p.name: values.pop(p.name) for p in own})})

        parsed.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        parsed.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
        return parsed

    return decorate


def with_data_options(command: Callable[..., None]) -> Callable[..., None]:
    """Every benchmark's data option (`Benchmark.data_options`: --zeroeval-data, --arena-hard-data,
    ...) as an option of `command`, where its `data_paths` parameter stands; `command` gets the
    given ones as {name: path}."""
    from repro.evaluation import benchmarks

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    own = [
        inspect.Parameter(
            o.name,
            kind,
            default=None,
            annotation=Annotated[Path | None, path_option(o.flag, role=o.role, help=o.help)],
        )
        for o in benchmarks.data_options()
    ]
    return in_place_of("data_paths", own, lambda given: {k: v for k, v in given.items() if v is not None})(
        command
    )


# What a command's `options` parameter defaults to; with_config_options puts the options in its place.
CONFIG_OPTIONS = ConfigOptions()


def _config_flags() -> dict[str, tuple[Any, Any]]:
    """ConfigOptions' fields as options, in --help's order: {field: (annotation, default)}."""
    return {
        "num_processes": (GpusOpt, None),
        "num_nodes": (NodesOpt, 1),
        "layout": (LayoutOpt, "current"),
        "overrides": (OverridesOpt, None),
        "dataset": (DatasetOpt, None),
        "data_source": (DataOpt, None),
        "padding_free": (PaddingFreeOpt, None),
        "tokenization": (TokenizationOpt, "simpo"),
        "max_steps": (MaxStepsOpt, None),
        "report_to": (ReportToOpt, None),
    }


def with_config_options(
    command: Callable[..., None] | None = None, *, only: tuple[str, ...] | None = None
) -> Callable[..., Any]:
    """The options that shape a run's config (--gpus, --set, --max-steps, ...; `only` these, if
    given) as `command`'s options, where its `options` parameter stands; `command` gets them as
    one ConfigOptions, declared here once for `repro run`, `train`, `sweep` and `show`."""
    flags = _config_flags()
    if only is not None and (unknown_fields := set(only) - set(flags)):
        raise TypeError(f"no config options {sorted(unknown_fields)}")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    own = [
        inspect.Parameter(name, kind, default=default, annotation=annotation)
        for name, (annotation, default) in flags.items()
        if only is None or name in only
    ]

    def collect(values: dict[str, Any]) -> ConfigOptions:
        if "overrides" in values:  # repeatable: a list, or None when not given
            values["overrides"] = tuple(values["overrides"] or ())
        if values.get("data_source") is not None:
            values["data_source"] = str(values["data_source"])
        return ConfigOptions(**values)

    decorate = in_place_of("options", own, collect)
    return decorate if command is None else decorate(command)

"""The benchmark registry: one module per benchmark, registered by name.

Built-in benchmarks are the modules of this package, found by listing it (a new one is one new
file: no list to edit); `load_path(FILE_OR_DIR)` imports a
user's own (repro eval/run/compare --bench-path), the way lm-evaluation-harness's
--include_path loads tasks. A plugin module subclasses `Benchmark` and decorates it with
`@register`; see the README ("Your own benchmark in one file")."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from repro.config import evalconfig
from repro.config.runconfig import EvalPlan
from repro.errors import ReproError, UsageError, unknown
from repro.evaluation.benchmarks.base import Benchmark, JudgeAccess, JudgeCost, Metric

__all__ = ["Benchmark", "JudgeAccess", "JudgeCost", "Metric", "register", "get", "names", "load_path"]

ENV = "REPRO_BENCH_PATH"  # plugin paths (os.pathsep-separated), inherited by jobs a run submits
_REGISTRY: dict[str, Benchmark] = {}
# plugin benchmark -> {"path": its file, "sha256": the file's (part of a run's identity)}
_PLUGINS: dict[str, dict[str, str]] = {}
_loading: Path | None = None  # the plugin file being imported (named in its errors)
_from_env = False


def register(cls: type[Benchmark]) -> type[Benchmark]:
    """Class decorator: adds a benchmark to the registry under `cls.name`."""
    where = f"{_loading}: " if _loading is not None else ""
    for attr in ("name", "title", "run", "scores"):
        missing = not hasattr(cls, attr) or (
            attr in ("run", "scores") and getattr(cls, attr) is getattr(Benchmark, attr)
        )
        if missing:
            raise ReproError(f"{where}benchmark {cls.__name__} defines no `{attr}`")
    if not isinstance(cls.name, str) or not cls.name.isidentifier():
        raise ReproError(f"{where}benchmark name {cls.name!r} is not a plain name (letters, digits, _)")
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        what = "a built-in benchmark" if built_in(_REGISTRY[cls.name]) else "another benchmark"
        raise ReproError(f"{where}benchmark '{cls.name}' clashes with {what} of that name")
    taken = {m.key: b.name for b in _REGISTRY.values() if b.name != cls.name for m in b.metrics}
    for metric in cls.metrics:
        if metric.key in taken:
            raise ReproError(f"{where}metric '{metric.key}' is already {taken[metric.key]}'s")
    _REGISTRY[cls.name] = cls()
    if _loading is not None:
        sha = hashlib.sha256(_loading.read_bytes()).hexdigest()
        _PLUGINS[cls.name] = {"path": str(_loading), "sha256": sha}
    return cls


def built_in(bench: Benchmark) -> bool:
    """Whether `bench` is one of repro's own (a module of this package), not a plugin."""
    return type(bench).__module__.startswith(f"{__name__}.")


def _built_ins() -> None:
    global _from_env
    for module in sorted(Path(__file__).parent.glob("*.py")):  # each module registers its own
        if module.stem != "__init__" and f"{__name__}.{module.stem}" not in sys.modules:
            importlib.import_module(f"{__name__}.{module.stem}")
    if not _from_env:
        _from_env = True
        for entry in filter(None, os.environ.get(ENV, "").split(os.pathsep)):
            load_path(Path(entry))


def sources(names_: list[str]) -> dict[str, str]:
    """sha256 of each plugin benchmark's file among `names_` (built-ins are the code version's)."""
    return {n: _PLUGINS[n]["sha256"] for n in names_ if n in _PLUGINS}


def plugins(names_: list[str]) -> dict[str, dict[str, str]]:
    """The plugin benchmarks among `names_`, each with its file and that file's sha256: what a
    process that did not load them (a SLURM job) needs to load the same code (`load_plugins`)."""
    return {n: dict(_PLUGINS[n]) for n in names_ if n in _PLUGINS}


def load_plugins(recorded: dict[str, dict[str, str]], *, where: str) -> None:
    """Load the plugins `plugins()` recorded; a file gone or changed since is one line (its
    answers would no longer be what the run's identity says)."""
    for name, plugin in recorded.items():
        path = Path(plugin["path"])
        if name not in _PLUGINS:
            if not path.is_file():
                raise ReproError(f"{where}: benchmark '{name}' was loaded from {path}, which is gone")
            load_path(path)
        if name not in _PLUGINS:
            raise ReproError(f"{where}: {path} no longer registers benchmark '{name}'")
        if _PLUGINS[name]["sha256"] != plugin["sha256"]:
            raise ReproError(
                f"{where}: {path} (benchmark '{name}') changed since the pipeline was written; "
                "submit it again"
            )


def all() -> list[Benchmark]:  # noqa: A001 - the registry's own vocabulary
    """Every registered benchmark: those with a `table_order` by it (the built-ins, in the
    published tables' column order), then the others as they were registered (plugins)."""
    _built_ins()
    return sorted(_REGISTRY.values(), key=lambda b: (b.table_order is None, b.table_order or 0))


def names() -> list[str]:
    return [b.name for b in all()]


def get(name: str) -> Benchmark:
    _built_ins()
    if name not in _REGISTRY:
        raise unknown("benchmark", name, names())
    return _REGISTRY[name]


def judged(names_: list[str]) -> list[str]:
    return [n for n in names_ if get(n).judged]


def metrics() -> list[tuple[Benchmark, Metric]]:
    """Every metric with its benchmark, in table order."""
    return [(b, m) for b in all() for m in b.metrics]


def headline() -> list[str]:
    """The metrics sweep tables and `repro slurm status` show."""
    return [m.key for _, m in metrics() if m.headline]


def metric(key: str) -> tuple[Benchmark, Metric]:
    for bench, m in metrics():
        if m.key == key:
            return bench, m
    raise unknown("metric", key, [m.key for _, m in metrics()])


def scores(outputs: dict[str, dict]) -> dict[str, object]:
    """The published tables' metrics from each benchmark's output (result.json's `scores`)."""
    found: dict[str, object] = {}
    for bench in all():
        if isinstance(outputs.get(bench.name), dict):
            found.update(bench.scores(outputs[bench.name]))
    return found


def default(plan: EvalPlan) -> list[str]:
    """The benchmarks a setting is evaluated on unless --bench says otherwise: its generation
    config's `benches` (gemma2-9b-it adds ZeroEval's GSM and MMLU-Redux), else the judged built-ins."""
    judged_built_ins = [b.name for b in all() if built_in(b) and b.judged]
    try:
        return list(evalconfig.generation(plan.generation).get("benches") or judged_built_ins)
    except ReproError:
        return judged_built_ins


def parse(text: str | None, plan: EvalPlan) -> list[str]:
    """--bench A,B (checked before any work starts), or the setting's default benchmarks."""
    if text is None:
        return default(plan)
    chosen = [b.strip() for b in text.split(",") if b.strip()]
    for name in chosen:
        get(name)
    if not chosen:
        raise UsageError("--bench names no benchmark")
    return chosen


def load_path(path: Path, *, export: bool = False) -> list[str]:
    """Import benchmark modules from a file or a folder of files (--bench-path); the names they
    registered. Any problem is one line naming the file. `export`: also name the path in
    $REPRO_BENCH_PATH, so the jobs this process submits (SLURM) load it too."""
    global _loading
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise UsageError(f"--bench-path {path}: no such file or folder")
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    if not files:
        raise UsageError(f"--bench-path {path}: no .py files in it")
    _built_ins()  # a plugin that takes a built-in's name is refused, whichever loads first
    added: list[str] = []
    for file in files:
        module_name = f"repro_bench_{hashlib.sha256(str(file).encode()).hexdigest()[:12]}"
        if module_name in sys.modules:
            continue  # loaded already (the same file named twice)
        before = set(_REGISTRY)
        _loading = file
        try:
            spec = importlib.util.spec_from_file_location(module_name, file)
            if spec is None or spec.loader is None:
                raise ReproError(f"{file}: not a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except ReproError:
                sys.modules.pop(module_name, None)
                raise
            except Exception as exc:  # a plugin's own bug: one line naming its file
                sys.modules.pop(module_name, None)
                raise ReproError(f"{file}{_line_of(exc, file)}: {type(exc).__name__}: {exc}") from None
        finally:
            _loading = None
        new = [n for n in _REGISTRY if n not in before]
        if not new:
            raise ReproError(f"{file}: registers no benchmark (decorate a Benchmark subclass with @register)")
        added += new
    if export:
        known = list(filter(None, os.environ.get(ENV, "").split(os.pathsep)))
        if str(path) not in known:
            os.environ[ENV] = os.pathsep.join([*known, str(path)])
    return added


def _line_of(exc: BaseException, file: Path) -> str:
    tb, line = exc.__traceback__, None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename) == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.lineno:
        line = exc.lineno
    return f":{line}" if line else ""

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
import json
import os
import sys
from pathlib import Path

from repro import hashing
from repro.config.runconfig import EvalPlan
from repro.errors import ReproError, UsageError, unknown
from repro.evaluation.benchmarks.base import PERCENT, Benchmark, DataOption, JudgeAccess, JudgeCost, Metric

__all__ = [
    "Benchmark", "DataOption", "JudgeAccess", "JudgeCost", "Metric", "PERCENT", "register", "get", "names",
    "load_path",
]  # fmt: skip

ENV = "REPRO_BENCH_PATH"  # plugin paths (os.pathsep-separated), inherited by jobs a run submits
_REGISTRY: dict[str, Benchmark] = {}
# plugin benchmark -> {"path": its file, "sha256": the file's (part of a run's identity)}
_PLUGINS: dict[str, dict[str, str]] = {}
_loading: Path | None = None  # the plugin file being imported (named in its errors)
_from_env = False
ROLES = ("file", "dir")  # what a data option names


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
    declared = {o.name: o for b in _REGISTRY.values() if b.name != cls.name for o in b.data_options}
    for option in cls.data_options:
        if not isinstance(option, DataOption) or not option.name.isidentifier() or option.role not in ROLES:
            raise ReproError(f"{where}benchmark {cls.name}: {option!r} is not a DataOption(name, file|dir)")
        if declared.get(option.name, option) != option:
            raise ReproError(f"{where}data option '{option.name}' is declared otherwise by another benchmark")
    taken = {m.key: b.name for b in _REGISTRY.values() if b.name != cls.name for m in b.metrics}
    for metric in cls.metrics:
        if metric.key in taken:
            raise ReproError(f"{where}metric '{metric.key}' is already {taken[metric.key]}'s")
        low, high = metric.bounds or (0, 0)
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low <= high):
            raise ReproError(f"{where}metric '{metric.key}': bounds {metric.bounds!r} are not (low, high)")
    _REGISTRY[cls.name] = cls()
    if _loading is not None:
        sha = hashlib.sha256(_loading.read_bytes()).hexdigest()
        _PLUGINS[cls.name] = {"path": str(_loading), "sha256": sha}
    return cls


def data_options() -> list[DataOption]:
    """Every registered benchmark's data options, once each, in registry order (the CLI's flags)."""
    _built_ins()
    found: dict[str, DataOption] = {}
    for bench in _REGISTRY.values():
        for option in bench.data_options:
            found.setdefault(option.name, option)
    return list(found.values())


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


def is_plugin(name: str) -> bool:
    return name in _PLUGINS


def source_file(name: str) -> str:
    """The file a benchmark is defined in (a plugin's, or the built-in module's)."""
    if name in _PLUGINS:
        return _PLUGINS[name]["path"]
    import inspect

    return inspect.getsourcefile(type(get(name))) or name


def inputs(name: str) -> dict[str, str]:
    """sha256 of each file a plugin benchmark declares as its input (`Benchmark.inputs`; by
    default the files directly beside it), by path relative to the plugin's folder."""
    plugin = Path(_PLUGINS[name]["path"])
    folder = plugin.parent
    declared = get(name).inputs
    found: dict[str, str] = {}
    for entry in declared if declared is not None else (".",):
        path = (folder / entry).resolve()
        if not path.exists():
            raise ReproError(f"{plugin}: benchmark '{name}' declares input {entry!r}, which does not exist")
        if path.is_dir():
            # the default (the plugin's folder) is not recursive: results and caches live below it
            files = path.rglob("*") if declared is not None else path.iterdir()
            chosen = [f for f in files if f.is_file() and not _ignored(f.relative_to(path))]
        else:
            chosen = [path]
        for file in sorted(chosen):
            label = str(file.relative_to(folder)) if file.is_relative_to(folder) else str(file)
            found[label] = hashing.file_sha256(file)
    return found


def _ignored(relative: Path) -> bool:
    """Hidden files and bytecode are not a benchmark's data."""
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts) or (
        relative.suffix == ".pyc"
    )


def sources(names_: list[str]) -> dict[str, str]:
    """The identity of each plugin benchmark among `names_` (built-ins are the code version's):
    the sha256 of its file and of the inputs it declares, in one hash."""
    out = {}
    for name in names_:
        if name in _PLUGINS:
            blob = {"file": _PLUGINS[name]["sha256"], "inputs": inputs(name)}
            out[name] = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
    return out


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
            found.update(scores_of(bench.name, outputs[bench.name]))
    return found


def scores_of(name: str, output: dict) -> dict[str, object]:
    """One benchmark's `scores(output)`, checked: a key its `metrics` do not declare would be
    stored and shown nowhere (compare reads declared metrics only), so it is one line naming
    the file; a plugin's own error in `scores` is one line too."""
    bench = get(name)
    try:
        found = bench.scores(output)
    except Exception as exc:
        if not is_plugin(name):
            raise
        raise ReproError(
            f"{source_file(name)}: benchmark '{name}' scores() failed: {type(exc).__name__}: {exc}"
        ) from None
    declared = [m.key for m in bench.metrics]
    if not isinstance(found, dict):
        raise ReproError(f"{source_file(name)}: benchmark '{name}' scores() returned no mapping")
    if undeclared := [k for k in found if k not in declared]:
        raise ReproError(
            f"{source_file(name)}: benchmark '{name}' scores() returned {', '.join(map(repr, undeclared))}, "
            f"which its metrics do not declare (declared: {', '.join(declared) or 'none'})"
        )
    return found


def why_missing(outputs: dict[str, dict], key: str) -> str:
    """Why score `key` is blank in a result with these benchmark outputs."""
    try:
        bench, _ = metric(key)
    except ReproError:
        return "not a metric of a loaded benchmark"
    output = outputs.get(bench.name)
    if not isinstance(output, dict):
        return f"{bench.name} was not evaluated"
    return bench.why_missing(output, key)


def default(plan: EvalPlan) -> list[str]:
    """The benchmarks a setting is evaluated on unless --bench says otherwise: its generation
    config's `benches` (gemma2-9b-it adds ZeroEval's GSM and MMLU-Redux), else the judged built-ins."""
    judged_built_ins = [b.name for b in all() if built_in(b) and b.judged]
    try:
        return list(plan.generation_file.data.get("benches") or judged_built_ins)
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

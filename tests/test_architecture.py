"""The package layout holds: every import (lazy ones included) goes down the declared layers,
the library never imports the CLI, imports form no cycle, no module is longer than one idea
needs (500 lines; the CLI modules of `repro run`, `sweep` and `eval`: 600 together), and no code
switches behaviour on the tiny setting's name or on a method's name (data says what tiny is and
what a method does)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from repro import paths
from repro.config.validate import read_yaml
from repro.evaluation import benchmarks

PACKAGE = paths.ROOT / "repro"

# The layers, lowest first: a module may import its own layer and the layers below it, never one
# above. A name stands for the module and everything under it.
LAYERS: list[set[str]] = [
    # foundations: one-line errors, where things are, JSON files, strict records, progress, hashes,
    # user paths, the tests' pauses, hub commits
    {"repro", "repro.errors", "repro.paths", "repro.io", "repro.records", "repro.progress", "repro.hashing",
     "repro.userpaths", "repro.filesystems", "repro.pauses", "repro.hub"},
    # data: preference pairs, tokenizers, chat templates, the BOS guard; the toy setting built on them
    {"repro.data", "repro.tiny"},
    # config: methods, settings, their resolution into the typed run config, generation configs
    {"repro.config"},
    # stack: the locks and the installed environment (reads YAML through config.validate); models:
    # checkpoints repro makes itself (GGUF import, the built-in models' pinned sources)
    {"repro.stack", "repro.models"},
    # train: losses, the trainer, the launcher
    {"repro.train"},
    # evaluation: generation backends, benchmarks' scorers, the judge
    {"repro.evaluation"},
    # a finished run's record: result.json, manifest.json, their verification, which runs are replicates
    {"repro.runs", "repro.runs.results"},
    # reading runs: compare, the published tables, curves, grids, plots, diagnosis, the report
    {"repro.runs.analysis"},
    # pipelines over training and evaluation: on-policy data, the run pipeline (plan, train,
    # evaluate, record; the local sweep), the speed benchmarks
    {"repro.datagen", "repro.runs.pipeline", "repro.perf"},
    # the cluster: the SLURM pipeline, its job scripts and stage jobs, `repro status`
    {"repro.runs.cluster"},
    # the command line
    {"repro.cli", "repro.__main__"},
]  # fmt: skip

# Upward imports that remain in modules being rewritten elsewhere; each is to go, none to be added.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(paths.ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """repro modules imported by `path` (`from repro.x import y` counts repro.x and repro.x.y)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("repro")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("repro"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_library_never_imports_the_cli():
    offenders = [
        name
        for name, path in modules().items()
        if not name.startswith("repro.cli") and name != "repro.__main__"
        and any(m == "repro.cli" or m.startswith("repro.cli.") for m in imports(path, top_level_only=False))
    ]  # fmt: skip
    assert offenders == []


def test_no_import_cycle():
    known = modules()
    # An edge to one's own ancestor package is no cycle: importing a submodule runs its parent first.
    graph = {
        name: {m for m in imports(path, top_level_only=False) if m in known and not name.startswith(m)}
        for name, path in known.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return [*stack, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*stack, node])):
                return cycle
        state[node] = 2
        return None

    for name in graph:
        if name not in state:
            assert (cycle := visit(name, [])) is None, " -> ".join(cycle)


# Issue 33: a module over this holds several ideas; split it by idea, never by line count alone.
MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines():
    long = {
        str(path.relative_to(paths.ROOT)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


# Issue 33: the commands that run the pipeline only parse, call the library and render; their logic
# lives below them (repro.runs.*, repro.evaluation) or in shared CLI helpers (cli/result_tables.py,
# cli/slurm.py), so these two modules stay small together.
PIPELINE_CLI = ("cli/run.py", "cli/evaluation.py")
MAX_PIPELINE_CLI_LINES = 600


def test_the_pipeline_commands_stay_at_most_600_lines_together():
    lines = {name: len((PACKAGE / name).read_text().splitlines()) for name in PIPELINE_CLI}
    assert sum(lines.values()) <= MAX_PIPELINE_CLI_LINES, lines


def lines_matching(pattern: re.Pattern[str]) -> list[str]:
    """path:line of every line of the package that matches `pattern`."""
    return [
        f"{path.relative_to(paths.ROOT)}:{n}"
        for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


# The tiny setting's names: "tiny", and repro's built-ins named after it ("repro:tiny", "repro:tiny-llama").
TINY = r"""["'](?:repro:)?tiny(?:[-:][\w-]+)?["']"""
# Files that still compare against a tiny name, owned elsewhere; each is to go, none to be added.
# repro/data/tokenizers.py (the lead's, issue 31): `load` picks a built-in tokenizer by comparing
# the name; a table of built-in tokenizers by name would make it data.
KNOWN_TINY_SWITCHES = {"repro/data/tokenizers.py"}


def test_no_behaviour_switch_on_the_tiny_name():
    """What tiny is and how it is evaluated is data (recipes/settings/tiny.yaml, eval/questions/tiny)."""
    found = lines_matching(re.compile(rf"(==|!=|\bin\b)\s*\(?\s*{TINY}|{TINY}\s*(==|!=)"))
    assert [hit for hit in found if hit.split(":")[0] not in KNOWN_TINY_SWITCHES] == []
    assert KNOWN_TINY_SWITCHES - {hit.split(":")[0] for hit in found} == set(), "fixed: remove it"


def test_no_behaviour_switch_on_a_method_name():
    """What sets a method apart is a trait in recipes/methods.yaml (`derived`, `mismatched_pairs`)."""
    names = "|".join(re.escape(n) for n in read_yaml(paths.METHODS_FILE))
    pattern = re.compile(rf"""(==|!=|\bin\b)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    assert lines_matching(pattern) == []


def layer(module: str) -> int:
    """The layer of `module`: that of the longest declared name it starts with."""
    best, found = "", -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, found = name, index
    assert found >= 0, f"{module}: in no layer of LAYERS"
    return found


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_imports_go_down_the_layers():
    known = modules()
    upward = {
        (name, target)
        for name, path in known.items()
        for target in imports(path, top_level_only=False)
        if target in known and layer(target) > layer(name)
    }
    assert sorted(upward - KNOWN_VIOLATIONS) == []
    assert sorted(KNOWN_VIOLATIONS - upward) == [], "fixed: remove from KNOWN_VIOLATIONS"


def test_no_metric_key_is_named_outside_its_benchmark_module():
    """Issue 19: a metric key as a string literal anywhere in repro/ but its benchmark's module would be a
    second place that knows it (compare, result, plots, status and the CLI read the registry)."""
    owners = {}
    for bench, metric in benchmarks.metrics():
        module = type(bench).__module__.rsplit(".", 1)[-1]
        owners[metric.key] = (
            {f"{module}.py", "zeroeval_task.py"} if module.startswith("zeroeval") else {f"{module}.py"}
        )
    # keys that are also benchmark names (MT-Bench's one metric, GSM's accuracy) are allowed as
    # benchmark names; a metric key is only flagged where it is not one
    names = set(benchmarks.names())
    hits = []
    for path in (paths.ROOT / "repro").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in owners:
                if node.value in names or path.name in owners[node.value]:
                    continue
                hits.append(f"{path.relative_to(paths.ROOT)}:{node.lineno} {node.value}")
    assert hits == []


def test_benchmarks_use_only_what_their_context_declares():
    """Issue 33: `Context` (benchmarks/base.py) is everything a benchmark may use of the runner,
    and the runner's `Evaluation` offers all of it (an attribute it sets, or a method)."""
    from repro.evaluation.benchmarks.base import Context

    declared = set(Context.__annotations__) | {n for n in vars(Context) if not n.startswith("_")}
    undeclared = sorted(
        f"{path.name}: ev.{node.attr}"
        for path in (PACKAGE / "evaluation" / "benchmarks").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ev"
        and node.attr not in declared
    )  # fmt: skip
    assert undeclared == []
    runner = ast.parse((PACKAGE / "evaluation" / "runner.py").read_text())
    (evaluation,) = [n for n in runner.body if isinstance(n, ast.ClassDef) and n.name == "Evaluation"]
    targets = [
        target
        for node in ast.walk(evaluation)
        if isinstance(node, ast.Assign)
        for assigned in node.targets
        for target in (assigned.elts if isinstance(assigned, ast.Tuple) else [assigned])
    ]
    offered = {n.name for n in evaluation.body if isinstance(n, ast.FunctionDef)} | {
        t.attr
        for t in targets
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }
    assert sorted(declared - offered) == []


def test_no_central_list_names_a_built_in_benchmark_or_check():
    """Issue 33: a built-in benchmark or a diagnosis check is one file of its package, found by
    listing the package; neither registry names them."""
    registry = (PACKAGE / "evaluation" / "benchmarks" / "__init__.py").read_text()
    assert [n for n in benchmarks.names() if f'"{n}"' in registry or f"'{n}'" in registry] == []
    folder = PACKAGE / "runs" / "analysis" / "diagnosis"
    checks = {path.stem for path in folder.glob("*.py")} - {"__init__", "base", "inputs"}
    chain = (folder / "base.py").read_text()
    assert [c for c in checks if f'"{c}"' in chain or f"'{c}'" in chain] == []


def test_the_slowest_files_list_names_files_that_exist():
    """tests/slowest_files.csv orders the suite (conftest): a renamed or removed file there would
    silently stop counting."""
    from tests.conftest import SLOWEST_FILES, slowest_files

    listed = slowest_files()
    assert listed and all(seconds > 0 for seconds in listed.values())
    assert [name for name in listed if not (SLOWEST_FILES.parent / name).is_file()] == []

"""A run's evaluation stage over time: which benchmarks it evaluates now, where their files go,
and how the new outputs add to the earlier ones.

Each benchmark of a run has its own key: the weights, `--limit`, the generation config, the
code, the engine, the judge (for a judged benchmark), the plugin's identity (for a
`--bench-path` benchmark) and the content of each data file or folder given for it
(`--zeroeval-data`, `--alpaca-reference`, ...: its sha256, under `data`). A rerun evaluates
only the benchmarks asked for whose key changed or whose output is incomplete (all of them
with --refresh-judgments); the earlier outputs whose key still holds stay in the result, so
`--bench alpaca_eval2,mine` on a finished run adds `mine` and keeps Arena-Hard, MT-Bench, GSM
and MMLU. A judged benchmark of another judge than this evaluation's is dropped: one result
names one judge.

The first evaluation writes into `eval/`; a later one into `eval/rerun-KEY/` (KEY: a hash of
what it evaluates, so a killed re-evaluation resumes in the same folder), and the record
(`eval/evaluation.json`) names each benchmark's folder. Answers are taken from any earlier
folder whose answer file was generated the same way (repro.evaluation.answering), so a new
judge does not regenerate them. When a re-evaluation comes back incomplete where the earlier
result was complete, the earlier result stands: the attempt's record stays in its own folder
(`not_kept`), and the command says so and fails.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import hashing
from repro.evaluation import benchmarks
from repro.evaluation.records import EvaluationResult
from repro.runs.results.verify import RERUN  # eval/rerun-KEY/: a later evaluation's own folder

BASE = ("weights_sha256", "limit", "generation_config_sha256", "code_version", "backend")


def benchmark_key(
    base: dict[str, Any],
    judge: dict[str, Any],
    name: str,
    plugin: str | None,
    data: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What one benchmark's output depends on. `data`: the sha256 of each data option given (by
    option name); the benchmark's own options join its key, and only when given, so a key
    recorded without them still holds for a run that gives none."""
    bench = benchmarks.get(name)
    key = {k: base.get(k) for k in BASE}
    if bench.judged:
        key["judge"] = judge
    if plugin is not None:
        key["plugin"] = plugin
    given = {o.name: (data or {})[o.name] for o in bench.data_options if o.name in (data or {})}
    if given:
        key["data"] = given
    return key


def data_identity(paths: dict[str, Path]) -> dict[str, str]:
    """The sha256 of each data file or folder given (a data option's name -> its path)."""
    return {name: hashing.path_sha256(path) for name, path in sorted(paths.items())}


def recorded_keys(
    record: EvaluationResult | None, weights: str, legacy_weights: str | None
) -> dict[str, Any]:
    """Each recorded benchmark's key. A record of an older repro has one key for all its
    benchmarks (`benches`, `judge`, `plugins`); one hashed with the old weights hash
    (training_args.bin included) is read as the same weights."""
    if record is None or not record.key:
        return {}
    key = record.key
    if "benchmarks" in key:
        keys = dict(key["benchmarks"])
    else:
        plugins = key.get("plugins") or {}
        keys = {
            name: benchmark_key(key, key.get("judge") or {}, name, plugins.get(name))
            for name in key.get("benches") or []
            if _known(name)
        }
    for name, bench in keys.items():
        if bench.get("weights_sha256") == legacy_weights and legacy_weights not in (None, weights):
            keys[name] = {**bench, "weights_sha256": weights}
    return keys


def _known(name: str) -> bool:
    try:
        benchmarks.get(name)
    except Exception:  # noqa: BLE001 - a plugin not loaded now: its output cannot be kept
        return False
    return True


@dataclass
class Plan:
    """What the evaluation stage does now."""

    directory: Path  # the run folder (results/.../RUN-ID, or its backend-/partial- folder)
    record: EvaluationResult | None  # the current record (eval/evaluation.json)
    wanted: dict[str, dict[str, Any]]  # each requested benchmark's key
    keys: dict[str, dict[str, Any]]  # each recorded benchmark's key
    todo: list[str] = field(default_factory=list)  # benchmarks to evaluate now
    kept: list[str] = field(default_factory=list)  # recorded outputs that stay in the result

    @property
    def output(self) -> Path:
        """Where this evaluation writes: eval/ the first time, eval/rerun-KEY/ after."""
        if self.record is None:
            return self.directory / "eval"
        blob = json.dumps({b: self.wanted[b] for b in sorted(self.todo)}, sort_keys=True, default=str)
        return self.directory / "eval" / f"{RERUN}{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    def earlier_folders(self) -> list[Path]:
        """Folders whose answers may serve this evaluation (checked answer file by answer file)."""
        eval_dir = self.directory / "eval"
        found = [eval_dir, *sorted(p for p in eval_dir.glob(f"{RERUN}*") if p.is_dir())]
        return [p for p in found if p != self.output]


def plan(
    directory: Path,
    benches: list[str],
    *,
    base: dict[str, Any],
    judge: dict[str, Any],
    legacy_weights: str | None = None,
    refresh: bool = False,
    data: dict[str, str] | None = None,
) -> Plan:
    """`data`: the sha256 of each data option given (`data_identity`)."""
    record = EvaluationResult.read_run_folder(directory / "eval")
    keys = recorded_keys(record, base["weights_sha256"], legacy_weights)
    sources = benchmarks.sources(benches)
    wanted = {b: benchmark_key(base, judge, b, sources.get(b), data) for b in benches}
    out = Plan(directory, record, wanted, keys)
    done = record.benchmarks if record else {}
    for name in benches:
        fresh = name in done and not done[name].incomplete and keys.get(name) == wanted[name]
        if refresh or not fresh:
            out.todo.append(name)
    for name in done:
        if name in out.todo or name not in keys:
            continue
        same = all(keys[name].get(k) == base.get(k) for k in BASE)  # weights, limit, config, code, engine
        if same and keys[name].get("judge") in (None, judge):  # one result names one judge
            out.kept.append(name)  # a plugin not loaded now too: its output and scores stay
    return out


def merge(plan: Plan, new: EvaluationResult) -> EvaluationResult:
    """The record of the run's evaluation: the earlier outputs kept, the new ones added."""
    folder = plan.output.relative_to(plan.directory)
    folders = {name: str(folder / name) for name in new.benchmarks}
    keys = {name: plan.wanted[name] for name in new.benchmarks}
    record = plan.record
    if record is None or not plan.kept:
        return dataclasses.replace(new, key={"benchmarks": keys}, folders=folders)
    kept = {name: record.benchmarks[name] for name in plan.kept}
    merged = {**kept, **new.benchmarks}
    outputs = {name: b.output for name, b in merged.items() if _known(name)}
    declared = {m.key for _, m in benchmarks.metrics()}
    # the scores of a kept plugin that is not loaded now: as recorded
    unloaded = {k: v for k, v in record.scores.items() if k not in declared}
    judged_now = any(benchmarks.get(n).judged for n in new.benchmarks)
    return dataclasses.replace(
        new,
        benchmarks=merged,
        scores={**unloaded, **benchmarks.scores(outputs)},
        judge=new.judge if judged_now else record.judge,
        judge_calls=add_calls(record.judge_calls, new.judge_calls),  # the kept judgments' calls too
        # kept outputs have this --limit too (their key): one that it cut keeps the result partial
        limit=new.limit if new.limit is not None else record.limit,
        notes=[*record.notes, *new.notes],
        timings_seconds={**{n: record.timings_seconds.get(n) for n in kept}, **new.timings_seconds},
        key={"benchmarks": {**{n: plan.keys[n] for n in kept}, **keys}},
        folders={**{n: record.folder(n) for n in kept}, **folders},
    )


def add_calls(earlier: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """The judge gateway's counts of two sessions added (requests, cache hits, calls, failures by
    kind): a result that keeps earlier judgments beside new ones was judged by both sessions."""
    if not earlier or not new:
        return new or earlier
    total: dict[str, Any] = {}
    for name in sorted(earlier.keys() | new.keys()):
        a, b = earlier.get(name), new.get(name)
        if isinstance(a, dict) or isinstance(b, dict):
            total[name] = {
                k: (a or {}).get(k, 0) + (b or {}).get(k, 0) for k in sorted({*(a or {}), *(b or {})})
            }
        elif isinstance(a, int | float) and isinstance(b, int | float):
            total[name] = a + b
        else:
            total[name] = b if b is not None else a
    return total


def not_kept(plan: Plan, new: EvaluationResult) -> str | None:
    """Why the new evaluation must not replace the earlier result (an earlier complete result,
    a new one incomplete), or None."""
    if plan.record is None or not plan.record.complete or new.complete:
        return None
    where = plan.output.relative_to(plan.directory)
    return (
        f"re-evaluation incomplete ({', '.join(new.incomplete_benchmarks)}): the earlier complete "
        f"result stands; this attempt's record is {where / 'evaluation.json'}"
    )


def sources(record: EvaluationResult) -> dict[str, str]:
    """Each plugin benchmark's identity, as its key recorded it (result.json's `sources`)."""
    keys = (record.key or {}).get("benchmarks") or {}
    return {name: key["plugin"] for name, key in keys.items() if key.get("plugin")}

"""`repro compare`: every reproduced score against the published tables (or the tiny band).

One row per setting x method x metric and group of replicates: the published value, the
reproduced mean and spread over the runs that differ only by their seed, the delta, and
whether it lies within tolerance. Runs of another configuration (an override, a grid point,
training cut by --max-steps, another judge or engine) are rows of their own, labelled with
what differs from the recipe (repro.runs.results.replicates); they are never averaged with the recipe's
runs, and only the recipe's rows count for --fail-outside-tolerance. Default tolerances are
the maintainers' stated noise floor: +-1.0 point for AlpacaEval 2 and Arena-Hard (SimPO
issues #21, #68). The Gemma table's ZeroEval columns (GSM, MMLU) have no stated noise floor:
repro uses +-1.0 point for accuracy and +-20 characters for the lengths (about 5% of the
published 341-624); lengths are compared as published, rounded to whole characters.
With three or more runs a one-sample t-test (scipy) of the runs against
the published number is reported. Errata-flagged published cells are marked; published
cells without a reproduction are listed as missing, never dropped; corrupt runs are skipped
and reported, and so are the cells of an incomplete benchmark (a run's complete benchmarks
still count). A `repro eval` of a checkpoint the authors released (the published row's
model_id) is a row of its own beside that row's cells, labelled "released checkpoint" with its
commit: what the evaluation alone reproduces, apart from training.
"""

from __future__ import annotations

import csv
import hashlib
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import paths
from repro.config.resolution import with_recipe_differences
from repro.errors import ReproError, UsageError, unknown
from repro.evaluation import benchmarks
from repro.evaluation.benchmarks import Metric
from repro.runs.analysis import published
from repro.runs.results import replicates, verify
from repro.runs.results.manifest import FILE as MANIFEST
from repro.runs.results.manifest import Manifest
from repro.runs.results.result import NotARunResult, RunResult, Training, Variant
from repro.train.outcome import TrainingOutcome


def compared() -> dict[str, Metric]:
    """The metrics compared with the paper (those with a tolerance), in table order."""
    return {m.key: m for _, m in benchmarks.metrics() if m.tolerance is not None}


def metric_titles() -> dict[str, str]:
    return {key: m.title for key, m in compared().items()}


def default_tolerance() -> dict[str, float]:
    return {key: m.tolerance for key, m in compared().items()}


@dataclass
class Row:
    setting: str
    method: str
    metric: str
    published: float | None
    runs: list[float] = field(default_factory=list)
    tolerance: float | None = None
    erratum: str | None = None
    band: tuple[float, float] | None = None
    variant: str = ""  # what differs from the recipe ('' for the recipe's own runs)
    recipe: bool = True  # the recipe's configuration (only these rows gate --fail-outside-tolerance)
    released: bool = False  # a released checkpoint's evaluation (`repro eval`), not a training of ours
    judge_notes: list[str] = field(default_factory=list)  # runs not judged as the published number was

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.runs) if self.runs else None

    @property
    def spread(self) -> float | None:
        return statistics.stdev(self.runs) if len(self.runs) > 1 else None

    @property
    def delta(self) -> float | None:
        return None if self.mean is None or self.published is None else self.mean - self.published

    @property
    def status(self) -> str:
        if not self.runs:
            return "missing"
        if self.band is not None:
            return "within" if self.band[0] <= self.mean <= self.band[1] else "outside"
        if self.published is None:
            return "no published value"
        return "within" if abs(self.delta) <= self.tolerance else "outside"

    @property
    def p_value(self) -> float | None:
        if len(self.runs) < 3 or self.published is None or self.spread in (None, 0.0):
            return None
        from scipy import stats

        return float(stats.ttest_1samp(self.runs, self.published).pvalue)

    def as_dict(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "method": self.method,
            "metric": self.metric,
            "variant": self.variant,
            "recipe": self.recipe,
            "published": self.published,
            "reproduced_mean": self.mean,
            "reproduced_std": self.spread,
            "runs": len(self.runs),
            "delta": self.delta,
            "tolerance": self.tolerance,
            "band": list(self.band) if self.band else None,
            "status": self.status,
            "p_value": self.p_value,
            "erratum": self.erratum,
            "judge_note": "; ".join(sorted(set(self.judge_notes)))
            if self.published is not None and self.judge_notes
            else None,
        }


@dataclass
class Comparison:
    rows: list[Row]
    skipped: list[tuple[str, str]]  # (path, reason)
    unverified: list[tuple[str, str]] = field(default_factory=list)  # (path, why): counted, said

    def outside(self) -> list[Row]:
        """The recipe's cells outside tolerance (a sweep point or an override may well be)."""
        return [r for r in self.rows if r.status == "outside" and r.recipe]


@dataclass
class Counted:
    """A run result compare counts, with its replicate group and how it differs from the recipe."""

    path: Path
    result: RunResult
    group: str | None  # the replicate key (None: a hand-made result, pooled by setting and method)
    variant: Variant | None
    extent: Training | None
    # a `repro eval` of a checkpoint the authors released: the method its published row lists it under
    released: str | None = None

    @property
    def setting(self) -> str:
        return self.result.setting

    @property
    def method(self) -> str:
        return self.result.method or self.released or ""


def collect(
    results_dir: Path, unverified: list[tuple[str, str]] | None = None
) -> tuple[list[Counted], list[tuple[str, str]]]:
    """Complete run results under `results_dir`; anything else is skipped with its reason. A run
    whose scores differ from what its manifest recorded is skipped; one whose manifest cannot
    vouch for its scores is counted but listed in `unverified`."""
    found, skipped = [], []
    unverified = [] if unverified is None else unverified
    table = published.load()
    seen: dict[tuple, str] = {}
    root = Path(results_dir)
    if not root.exists():
        raise ReproError(f"{results_dir}: no such directory")
    for path in sorted(root.rglob("result.json")):
        if "published" in path.parts:
            continue
        try:
            result = RunResult.read(path)
        except NotARunResult:  # an older repro's eval/result.json: read through its run
            continue
        except ReproError as exc:
            skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
            continue
        released = result.of_checkpoint and published.released_as(table, result.setting, result.model)
        if result.of_checkpoint and not released:
            skipped.append((str(path), _not_released(table, result)))
            continue
        if result.limit:
            skipped.append((str(path), f"partial evaluation (--limit {result.limit}): not averaged"))
            continue
        if not result.complete:
            if not _complete_benchmarks(result):
                named = ", ".join(result.incomplete_benchmarks)
                skipped.append((str(path), f"incomplete run ({named})" if named else "incomplete run"))
                continue
            # the complete benchmarks count; the incomplete ones' cells are left out and said
            skipped.append(
                (str(path), f"incomplete {', '.join(result.incomplete_benchmarks)}: those cells left out")
            )
        if problem := _verification(path, unverified):
            skipped.append((str(path), problem))
            continue
        if released:
            run = _released(path, result, released)
        else:
            run = Counted(path, result, *_identity(path, result))
        # the same trained model evaluated the same way twice (e.g. a copy of a run folder)
        counted = (result.setting, result.method, result.run_id, run.group)
        if result.run_id and counted in seen:
            skipped.append((str(path), f"same run as {seen[counted]} (counted once)"))
            continue
        seen[counted] = str(path)
        found.append(run)
    return found, skipped


def _not_released(table: list[published.Row], result: RunResult) -> str:
    """Why a `repro eval` result has no published row to be compared with."""
    if settings := published.settings_releasing(table, result.model):
        return (
            f"a `repro eval` of {result.model} under setting {result.setting}: the published tables "
            f"list it under {', '.join(settings)}"
        )
    return "a `repro eval` of a checkpoint the published tables do not list: no method to compare it under"


def _released(path: Path, result: RunResult, method: str) -> Counted:
    """A released checkpoint's evaluation: its own rows beside the published cell (never pooled
    with trained reproductions, never gating --fail-outside-tolerance), its evaluations of the same
    commit by the same judge pooled."""
    judge = result.judge.label() if result.judge else None  # which model, and where
    group = hashlib.sha256(f"{result.model.lower()}\0{result.model_commit}\0{judge}".encode()).hexdigest()
    return Counted(path, result, group, None, None, released=method)


def _complete_benchmarks(result: RunResult) -> list[str]:
    """The benchmarks of an incomplete run whose scores are whole (a weak judge may leave one
    benchmark without verdicts and the others complete); none when the run names no culprit."""
    if not result.incomplete_benchmarks:
        return []
    scored = {benchmarks.metric(k)[0].name for k in result.scores if _known(k)}
    return sorted(scored - set(result.incomplete_benchmarks))


def _verification(path: Path, unverified: list[tuple[str, str]]) -> str | None:
    """Why the run of `path` fails verification of its score files (a reason to skip it), or
    None; a manifest that cannot vouch for the scores adds to `unverified` instead."""
    if not (path.parent / MANIFEST).exists():
        unverified.append((str(path), "no manifest.json beside it: its scores are unverified"))
        return None
    try:
        check = verify.verify(path.parent, scores_only=True)
    except ReproError as exc:  # a manifest that records no hashes cannot vouch for anything
        unverified.append((str(path), f"its manifest records no hashes ({exc})"))
        return None
    if check.problems:
        return f"fails verification: {'; '.join(check.problems)}"
    unverified.extend((str(path), note) for note in check.notes)
    return None


def _identity(path: Path, result: RunResult) -> tuple[str | None, Variant | None, Training | None]:
    """(replicate key, differences from the recipe, training extent) of one result. Results of
    repro before replicate keys are read through their manifest; hand-made results without
    either have no key (they are pooled by setting and method, as they always were)."""
    if result.replicate_key:
        return result.replicate_key, result.variant, result.training
    manifest = Manifest.read_or_none(path.parent)
    try:
        config = manifest.run_config(str(path.parent / "manifest.json")) if manifest else None
    except ReproError:
        config = None
    if config is None:
        return None, None, None
    engines = [p.removeprefix("backend-") for p in path.parts if p.startswith("backend-")]
    engine = engines[-1] if engines else "transformers"
    root = next((d for d in (path.parent, *path.parents) if (d / "train").is_dir()), path.parent)
    try:
        outcome = TrainingOutcome.read(root / "train")
    except ReproError:
        outcome = None  # a damaged metrics.json: the steps are unknown, the grouping stands
    config = with_recipe_differences(config)  # an older run: from its recipe as it is now
    kind = replicates.describe(config, judge=result.judge, backend=engine, outcome=outcome)
    return kind.replicate_key, kind.variant, kind.training


def _labels(results: list[Counted]) -> dict[tuple[str, str, str | None], tuple[str, bool]]:
    """(setting, method, group) -> (label, is the recipe). Groups whose differences from the
    recipe read the same (e.g. made by two versions of repro) are told apart by their key."""
    labels: dict[tuple[str, str, str | None], tuple[str, bool]] = {}
    for r in results:
        if r.released:
            commit = r.result.model_commit
            text = f"released checkpoint{f' at {commit[:8]}' if commit else ''}"
            labels[(r.setting, r.method, r.group)] = (text, False)
            continue
        text = replicates.label(r.variant, r.extent)
        labels[(r.setting, r.method, r.group)] = (text, text == "")
    by_text: dict[tuple[str, str, str], list[tuple[str, str, str | None]]] = {}
    for k, (text, _) in labels.items():
        by_text.setdefault((k[0], k[1], text), []).append(k)
    for (_, _, text), keys in by_text.items():
        if len(keys) > 1:
            for k in keys:
                tag = f"config {k[2][:8]}" if k[2] else "no recorded config"
                labels[k] = ("; ".join(t for t in (text, tag) if t), labels[k][1])
    return labels


def _plugin_versions(results: list[Counted]) -> dict[tuple[str, str, str], set[str | None]]:
    """(setting, method, plugin benchmark) -> the plugin identities its runs were evaluated with."""
    versions: dict[tuple[str, str, str], set[str | None]] = {}
    for r in results:
        for bench in {benchmarks.metric(k)[0].name for k in r.result.scores if _known(k)}:
            if benchmarks.is_plugin(bench):
                versions.setdefault((r.setting, r.method, bench), set()).add(r.result.sources.get(bench))
    return versions


def _known(key: str) -> bool:
    try:
        benchmarks.metric(key)
    except ReproError:
        return False
    return True


def parse_tolerances(items: list[str]) -> dict[str, float]:
    """--tolerance METRIC=VALUE pairs."""
    tolerances = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in compared():
            raise unknown("tolerance metric", key, compared())
        if key in tolerances:  # the last would win unseen
            raise UsageError(f"--tolerance {key} given twice")
        try:
            tolerances[key] = float(value)
        except ValueError:
            raise UsageError(f"--tolerance expects METRIC=NUMBER, got '{item}'") from None
        if not tolerances[key] >= 0:  # NaN too
            raise UsageError(f"--tolerance {key}: a tolerance is a distance, 0 or more (got {value})")
    return tolerances


def reference_bands() -> dict[tuple[str, str, str], tuple[float, float]]:
    """The bands that stand in for published numbers where a setting has none (tiny, smol):
    results/published/reference_bands.csv, each row with how it was derived."""
    with open(paths.PUBLISHED / "reference_bands.csv", newline="") as fh:
        return {
            (r["setting"], r["method"], r["metric"]): (float(r["low"]), float(r["high"]))
            for r in csv.DictReader(fh)
        }


def compare(results_dir: Path, tolerances: dict[str, float] | None = None) -> Comparison:
    metrics = compared()
    tolerance = {**default_tolerance(), **(tolerances or {})}
    unverified: list[tuple[str, str]] = []
    results, skipped = collect(results_dir, unverified)
    rows: dict[tuple[str, str, str], Row] = {}
    for prow in published.load():
        for metric in metrics:
            value = prow.scores.get(metric)
            if value is None:
                continue
            flagged = [e for e in prow.errata if e["cell"] == metric]
            note = (
                f"erratum: {flagged[0]['note']} (alternative {flagged[0]['alternative']})"
                if flagged
                else None
            )
            rows[(prow.setting, prow.method, metric)] = Row(
                prow.setting, prow.method, metric, value, tolerance=tolerance[metric], erratum=note
            )
    # Reference bands (results/published/reference_bands.csv) stand in for published values of
    # the settings they name, once a run of that setting is there.
    reproduced = {r.setting for r in results}
    for (setting, method, metric), limits in reference_bands().items():
        if setting in reproduced:
            rows[(setting, method, metric)] = Row(setting, method, metric, None, band=limits)
    labels = _labels(results)
    versions = _plugin_versions(results)
    recipe_groups: dict[tuple[str, str, str], str | None] = {}  # the recipe row's group, once taken
    grouped: dict[tuple[str, str, str, str | None], Row] = {}
    for run in results:
        group = (run.setting, run.method, run.group)
        for metric, spec in metrics.items():
            value = run.result.metric(metric)
            if value is None or benchmarks.metric(metric)[0].name in run.result.incomplete_benchmarks:
                continue
            text, is_recipe = labels[group]
            gid = group[2]
            bench = benchmarks.metric(metric)[0].name
            if benchmarks.is_plugin(bench):  # replicates of a plugin's metric ran the same plugin
                source = run.result.sources.get(bench)
                gid = f"{gid}+{source}"
                if len(versions[(run.setting, run.method, bench)]) > 1:
                    tag = f"{bench} {source[:8]}" if source else f"{bench} (version not recorded)"
                    text = "; ".join(t for t in (text, tag) if t)
            cell = (run.setting, run.method, metric)
            template = rows.get(cell) or Row(*cell, None, tolerance=tolerance[metric])
            if is_recipe and recipe_groups.setdefault(cell, gid) == gid:
                row = rows.setdefault(cell, template)  # the published cell's own row
            else:
                row = grouped.get((*cell, gid))
                if row is None:
                    row = grouped[(*cell, gid)] = Row(
                        *cell, template.published, tolerance=template.tolerance, erratum=template.erratum,
                        band=template.band, variant=text, recipe=is_recipe, released=bool(run.released),
                    )  # fmt: skip
            row.variant = text
            row.runs.append(round(value, spec.decimals) if spec.decimals is not None else value)
            wanted = benchmarks.metric(metric)[0].published_judge
            if run.result.judge and (note := run.result.judge.published_note(wanted)):
                row.judge_notes.append(note)
    ordered = sorted(
        [*rows.values(), *grouped.values()],
        key=lambda r: (r.setting, r.method, not r.recipe, r.variant, list(metrics).index(r.metric)),
    )
    return Comparison(ordered, skipped, unverified)


def plot(comparison: Comparison, path: Path) -> Path:
    """Published against reproduced, one panel per metric, one row per setting x method."""
    from repro.runs.analysis import plots

    return plots.compare(comparison.rows, metric_titles(), default_tolerance(), path)

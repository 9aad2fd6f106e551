"""`repro report RESULTS`: one self-contained page about a results folder, to share or attach.

The page holds the comparison with the published tables (tolerance bands, colour-coded), the
plots (scores against the paper with error bars, each run's training curves) and, per run,
its provenance (config hash, code version, lock sha256, judge, judge cost spent, partial or
complete), its own scores (each, or why it is blank: a run compare leaves out still shows what
it measured) and its diagnosis (repro.runs.analysis.diagnosis). Everything is inline: CSS in a <style>
element, images as data: URIs, the data as JSON in a <script type="application/json">; the
page loads nothing from anywhere and runs no script. `markdown()` is the same content for a
GitHub issue (plots left out: an issue cannot hold inline images).
"""

from __future__ import annotations

import base64
import html as _html
import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repro import hub, io
from repro.errors import ReproError
from repro.evaluation import benchmarks
from repro.evaluation.judge.judged_by import JudgedBy
from repro.evaluation.records import EvaluationResult
from repro.runs.analysis import compare, diagnosis, plots
from repro.runs.results.manifest import Manifest
from repro.runs.results.result import FILE, RunResult

STATUS_CLASS = {
    "within": "ok",
    "outside": "bad",
    "no published value": "none",
    "missing": "none",
    "ok": "ok",
    "differs": "bad",
    "unknown": "none",
}

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
h3 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { background: #dafbe1; } .bad { background: #ffebe9; } .none { background: #f6f8fa; color: #57606a; }
.variant { background: #fff8c5; } table.scores { width: auto; min-width: 30%; }
.meta { color: #57606a; } img { max-width: 100%; border: 1px solid #d0d7de; margin: 0.4em 0; }
ol.causes li { margin: 0.2em 0; } code { font-size: 0.92em; }
section.run { break-inside: avoid-page; }
@media print { body { margin: 0; max-width: none; } img { max-width: 90%; } .ok, .bad, .none, .variant
  { -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
"""


@dataclass
class RunPage:
    path: Path
    result: RunResult | None  # None: an unfinished run (or an unreadable result.json)
    manifest: Manifest | None
    diagnosis: Any

    @property
    def label(self) -> str:
        data = (self.manifest.config if self.manifest else None) or {}
        if self.result:
            data = {"setting": self.result.setting, "method": self.result.method}
            if self.result.of_checkpoint:
                return f"{self.result.setting}: checkpoint {self.result.model}, folder {self.path.name}"
        return f"{data.get('setting', '?')} x {data.get('method', '?')}, run {self.path.name}"

    def provenance(self) -> list[tuple[str, str]]:
        manifest, result = self.manifest or Manifest(), self.result
        env = manifest.environment or {}
        config = manifest.config or {}
        judge = (result.judge if result else None) or manifest.judge
        history = manifest.history or [{}]
        if result:
            state = (
                "complete" if result.complete else f"incomplete ({', '.join(result.incomplete_benchmarks)})"
            )
            if result.partial:  # what makes it partial, in its own words (--limit N, --max-steps)
                state = f"partial: {'; '.join(result.partial_reasons) or 'see result.json'}; {state}"
        else:
            state = "unfinished (no result.json)"
        git = (history[-1].get("git") or {}) if history else {}
        if result and result.of_checkpoint and self.manifest is None:  # no run around it
            run = [("model", hub.at(result.model, result.model_commit))]
            if result.baseline_model:
                run.append(("baseline model", hub.at(result.baseline_model, result.baseline_commit)))
        else:
            run = [
                ("config hash", str(manifest.config_hash or "")),
                ("code version", str(config.get("code_version") or "")[:16]),
                ("git", f"{git.get('commit') or 'unknown'}{' (dirty)' if git.get('dirty') else ''}"),
                ("lock", f"{env.get('lock') or ''} sha256 {env.get('lockfile_sha256') or 'unknown'}"),
            ]
        return [
            ("folder", str(self.path)),
            ("state", state),
            *run,
            ("judge", judge.label() if judge else "unknown"),
            (
                "judge cost spent",
                judge_cost(
                    self.path, judge, (result.judge_calls if result else None) or manifest.judge_calls
                ),
            ),
        ]

    def scores(self) -> list[tuple[str, str]]:
        """result.json's scores as it names them, each with its value or why it is blank (none
        for an unfinished run)."""
        if self.result is None:
            return []
        blank, why = self.result.blank_scores, benchmarks.why_missing
        return [(k, f"blank: {why(self.result.benchmarks, k)}" if k in blank else _score(v))
                for k, v in self.result.scores.items()]  # fmt: skip


def _score(value: Any) -> str:
    """A score as the page shows it: two decimals for a float, a pair joined by a comma."""
    if isinstance(value, list):
        return ", ".join(_score(v) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def judge_cost(run_dir: Path, judge: JudgedBy | None, calls: dict[str, Any] | None) -> str:
    """What judging cost: nothing for the local rule judge or a judge on this machine (no API
    fees); else AlpacaEval's recorded price_per_example summed over its annotations (cache hits
    cost nothing). alpaca-eval records NaN for a model it has no price for: unknown, never $nan."""
    count = (
        ""
        if not calls
        else f" ({calls.get('backend_calls', 0)} calls, {calls.get('cache_hits', 0)} from the cache)"
    )
    if judge and judge.kind == "rule":
        return "$0 (local rule judge)" + count
    if judge and judge.local:
        return f"$0 in API fees (a judge on this machine: {judge.label()}){count}"
    record = EvaluationResult.read_run_folder(run_dir / "eval")  # where its AlpacaEval files are
    if record:
        folder = record.folder("alpaca_eval2")
    elif (run_dir / "alpaca_eval2").is_dir() and not (run_dir / "eval").is_dir():
        folder = "alpaca_eval2"  # a `repro eval` output: its benchmarks' files lie in it
    else:
        folder = "eval/alpaca_eval2"
    annotations = io.read_json(run_dir / folder / "annotations.json")
    if isinstance(annotations, list):
        prices = [a.get("price_per_example") for a in annotations if isinstance(a, dict)]
        known = [float(p) for p in prices if isinstance(p, (int, float, str)) and _is_price(p)]
        if known:
            return f"${sum(known):.2f} on AlpacaEval (recorded per judgment){count}"
        return f"unknown (no price recorded per judgment){count}"
    return "unknown" + count


def _is_price(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def find_runs(results_dir: Path) -> list[Path]:
    """Run folders under `results_dir`: those with a manifest or a result (published tables left out)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ReproError(f"{results_dir}: no such directory")
    found = {p.parent for name in ("manifest.json", "result.json") for p in root.rglob(name)}
    return sorted(p for p in found if p.name != "eval" and "published" not in p.relative_to(root).parts)


def collect(results_dir: Path) -> tuple[Any, list[RunPage]]:
    comparison = compare.compare(results_dir)
    found = find_runs(results_dir)
    if not found:  # as `repro compare` says it: a report of no runs is a wrong folder
        raise ReproError(f"no runs found under {results_dir}")
    pages = []
    for path in found:
        try:
            diagnosed = diagnosis.run(path)
        except ReproError as exc:
            diagnosed = exc
        pages.append(RunPage(path, _result(path / FILE), Manifest.read_or_none(path), diagnosed))
    return comparison, pages


def _method(row: Any) -> str:
    """The method, with what the row's configuration changed from the recipe (compare's label)."""
    return f"{row.method} ({row.variant})" if getattr(row, "variant", "") else row.method


def _result(path: Path) -> RunResult | None:
    try:
        return RunResult.read(path) if path.exists() else None
    except ReproError:
        return None  # the run's diagnosis names the problem


def _rows(comparison: Any) -> list[Any]:
    return [r for r in comparison.rows if r.runs]


def _published_text(row: Any) -> str:
    if row.band is not None:
        return f"band {row.band[0]:g}-{row.band[1]:g}"
    if row.published is None:
        return ""
    return f"{row.published:g} ± {row.tolerance:g}" + (" *" if row.erratum else "")


def _status(row: Any) -> str:
    """A row's status; a row that is not the recipe's (truncated, an override, a grid point)
    says so: being within tolerance does not make it a reproduction."""
    if row.recipe or row.status not in ("within", "outside"):
        return row.status
    if getattr(row, "released", False):
        return f"{row.status}: the released checkpoint, evaluated here"
    return f"{row.status}, but not the recipe's run"


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "" if value is None else format(value, spec)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def html_page(results_dir: Path) -> str:
    comparison, pages = collect(results_dir)
    e = _html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>repro report: {e(str(results_dir))}</title><style>{CSS}</style></head><body>",
        "<h1>Reproduction report</h1>",
        f'<p class="meta">{e(str(results_dir))}, made {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by '
        f"<code>repro report</code>; {len(pages)} run(s).</p>",
        "<h2>Reproduced vs published</h2>",
    ]
    rows = _rows(comparison)
    if rows:
        out.append(
            '<table id="compare"><thead><tr><th>setting</th><th>method</th><th>metric</th>'
            "<th>published (tolerance)</th><th>reproduced</th><th>std</th><th>runs</th><th>delta</th>"
            "<th>status</th></tr></thead><tbody>"
        )
        for r in rows:
            cls = STATUS_CLASS.get(r.status, "none") if r.recipe else "variant"
            out.append(
                f'<tr class="{cls}" data-status="{e(r.status)}">'
                f"<td>{e(r.setting)}</td><td>{e(_method(r))}</td>"
                f"<td>{e(compare.metric_titles()[r.metric])}</td><td>{e(_published_text(r))}</td>"
                f'<td class="num">{_fmt(r.mean)}</td><td class="num">{_fmt(r.spread)}</td>'
                f'<td class="num">{len(r.runs)}</td><td class="num">{_fmt(r.delta, "+.2f")}</td>'
                f"<td>{e(_status(r))}</td></tr>"
            )
        out.append("</tbody></table>")
        with tempfile.TemporaryDirectory(prefix="repro-report-") as tmp:
            titles, tolerance = compare.metric_titles(), compare.default_tolerance()
            plot = plots.compare(rows, titles, tolerance, Path(tmp) / "compare.png")
            out.append(
                f'<img id="compare-plot" alt="reproduced scores against the published ones, with error bars" '
                f'src="{_image(plot)}">'
            )
    else:
        out.append("<p>No complete run to compare.</p>")
    for path, reason in comparison.skipped:
        out.append(f'<p class="meta">skipped {e(path)}: {e(reason)}</p>')
    out.append("<h2>Runs</h2>")
    for page in pages:
        out += _run_html(page)
    data = {
        "results": str(results_dir),
        "compare": [r.as_dict() for r in rows],
        "runs": [{"path": str(p.path), "diagnosis": _diagnosis_dict(p.diagnosis)} for p in pages],
    }
    payload = io.dumps(data).replace("</", "<\\/")
    out.append(f'<script type="application/json" id="report-data">{payload}</script>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _diagnosis_dict(diagnosed: Any) -> dict[str, Any]:
    return {"error": str(diagnosed)} if isinstance(diagnosed, Exception) else diagnosed.as_dict()


def _run_html(page: RunPage) -> list[str]:
    e = _html.escape
    out = [f'<section class="run"><h3>{e(page.label)}</h3><table class="provenance"><tbody>']
    out += [f"<tr><th>{e(k)}</th><td><code>{e(v)}</code></td></tr>" for k, v in page.provenance()]
    out.append("</tbody></table>")
    if scores := page.scores():
        out.append('<table class="scores"><thead><tr><th>score</th><th>value</th></tr></thead><tbody>')
        for k, v in scores:  # a blank's reason reads as text, a number lines up on the right
            cell = "<td>" if v.startswith("blank:") else '<td class="num">'
            out.append(f'<tr data-score="{e(k)}"><td>{e(k)}</td>{cell}{e(v)}</td></tr>')
        out.append("</tbody></table>")
    curves = page.path / "curves.png"
    if curves.is_file() and (problem := _changed(page, "curves.png")):
        out.append(f'<p class="bad">training curves not shown: {e(problem)} (repro verify)</p>')
    elif curves.is_file():
        out.append(f'<img class="curves" alt="training curves of {e(page.label)}" src="{_image(curves)}">')
    diagnosed = page.diagnosis
    if isinstance(diagnosed, Exception):
        out.append(f"<p>diagnosis failed: {e(str(diagnosed))}</p></section>")
        return out
    out += [f'<p class="meta">! {e(n)}</p>' for n in diagnosed.notes]
    out.append(
        '<table class="diagnosis"><thead><tr><th>check</th><th>verdict</th><th>evidence</th></tr></thead>'
        "<tbody>"
    )
    for c in diagnosed.checks:
        out.append(
            f'<tr class="{STATUS_CLASS[c.status]}" data-check="{e(c.check)}"><td>{e(c.check)}</td>'
            f'<td class="verdict">{e(c.status)}</td><td>{e(c.summary)}</td></tr>'
        )
    out.append("</tbody></table>")
    causes = diagnosed.causes
    if causes:
        out.append('<p>Likely causes, most likely first:</p><ol class="causes">')
        out += [f"<li>[{e(c.check)}] {e(c.summary)}</li>" for c in causes]
        out.append("</ol>")
    else:
        out.append("<p>Nothing differs.</p>")
    out.append("</section>")
    return out


def _changed(page: RunPage, name: str) -> str | None:
    """Why the run's file `name` does not verify against its manifest (as its diagnosis found
    it, repro.runs.analysis.diagnosis.run), or None."""
    if isinstance(page.diagnosis, Exception):
        return None
    problems = [p for c in page.diagnosis.checks for p in c.evidence.get("verify", [])]
    return next((p for p in problems if p.startswith(f"{name}:")), None)


def markdown(results_dir: Path) -> str:
    comparison, pages = collect(results_dir)
    out = [f"## Reproduction report: `{results_dir}`", ""]
    if _rows(comparison):
        columns = ["setting", "method", "metric", "published (tolerance)", "reproduced", "std", "runs"]
        out += ["| " + " | ".join([*columns, "delta", "status"]) + " |", "|---" * 9 + "|"]
    mark = {"within": "✅ within", "outside": "❌ outside"}
    for r in _rows(comparison):
        status = mark.get(r.status, r.status) if r.recipe else f"⚠️ {_status(r)}"
        out.append(
            f"| {r.setting} | {_method(r)} | {compare.metric_titles()[r.metric]} | {_published_text(r)} | "
            f"{_fmt(r.mean)} | "
            f"{_fmt(r.spread)} | {len(r.runs)} | {_fmt(r.delta, '+.2f')} | {status} |"
        )
    if not _rows(comparison):
        out.append("No complete run to compare.")
    if comparison.skipped:  # a run left out of the table says why (it failed verification, ...)
        out += ["", "Left out of the comparison:", ""]
        out += [f"- `{path}`: {reason}" for path, reason in comparison.skipped]
    for page in pages:
        out += ["", f"### {page.label}", ""]
        out += [f"- {k}: `{v}`" for k, v in page.provenance()]
        if scores := page.scores():
            out += ["", "| score | value |", "|---|---|"]
            out += [f"| {k} | {v.replace('|', '/')} |" for k, v in scores]
        diagnosed = page.diagnosis
        if isinstance(diagnosed, Exception):
            out += ["", f"diagnosis failed: {diagnosed}"]
            continue
        out += ["", "| check | verdict | evidence |", "|---|---|---|"]
        out += [f"| {c.check} | {c.status} | {c.summary.replace('|', '/')} |" for c in diagnosed.checks]
        if diagnosed.causes:
            out += ["", "Likely causes, most likely first:", ""]
            out += [f"{i}. [{c.check}] {c.summary}" for i, c in enumerate(diagnosed.causes, 1)]
    out += ["", "Each run's evidence in numbers: `repro diagnose RUN_DIR --format json`."]
    return "\n".join(out) + "\n"


html = html_page  # `report.html(RESULTS)` reads best at the call site

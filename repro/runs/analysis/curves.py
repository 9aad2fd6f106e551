"""Training curves of a run laid over a published run's history (`repro compare RUN --curves`).

Names: the original trainer's keys as its W&B runs show them (transformers' rewrite_logs:
a training log's `rewards/margins` is `train/rewards/margins`): train/loss,
train/rewards/{chosen,rejected,accuracies,margins}, train/logps/{chosen,rejected}.

Published histories: a W&B CSV export (a `Step` or `train/global_step` column, then
`<run name> - <metric>` columns; `__MIN`/`__MAX` columns ignored; one run per file unless
`run_name` picks one) or a plain CSV (`step`, optional `epoch`, one column per metric).
A run's history: its metrics.json log history (RUN/metrics.json or RUN/train/metrics.json),
else RUN/curves.csv.

Alignment (`align`): `step` (optimizer step) or `epoch` (fraction of an epoch). `auto`
aligns by step when both runs take the same number of optimizer steps per epoch (same data
and total batch), else by epoch fraction. Steps per epoch come from logged step/epoch
pairs; a published history without epochs is assumed to span exactly one epoch (as every
SimPO run does), so its last step is its steps per epoch.

Deviation, per metric: over the run's logged points inside the x range both histories
cover, |run(x) - published(x)| with the published curve linearly interpolated at x;
reported as max and mean. Inside the band when max <= tolerance: an absolute value per
metric, or by default 10% of the published curve's span over that range (the shape must
match; a flat published curve allows no deviation).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.errors import ReproError, unknown

TRAINER_KEYS = (
    "train/loss",
    "train/rewards/chosen",
    "train/rewards/rejected",
    "train/rewards/accuracies",
    "train/rewards/margins",
    "train/logps/chosen",
    "train/logps/rejected",
)
DEFAULT_METRICS = ("train/rewards/margins", "train/rewards/accuracies", "train/loss")
ALIGN = ("auto", "step", "epoch")
DEFAULT_BAND = 0.10  # of the published curve's span
STEP_COLUMNS = ("train/global_step", "step", "Step", "global_step", "_step")
EPOCH_COLUMNS = ("train/epoch", "epoch")


def tracker_key(key: str) -> str:
    """The name a tracker shows for a Trainer log key (transformers' rewrite_logs)."""
    if key.startswith("eval_"):
        return "eval/" + key[len("eval_") :]
    if key.startswith("test_"):
        return "test/" + key[len("test_") :]
    return "train/" + key


def canonical(metric: str) -> str:
    """`rewards/margins`, `train/rewards/margins` and `train_rewards/margins` name one metric."""
    metric = metric.strip()
    if metric.startswith("train/"):
        return metric
    return "train/" + metric.removeprefix("train_")


def training_logs(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Trainer's training rows: every logging step, and the end-of-training summary when
    it carries the trainer's metrics (the trainer adds the last steps' metrics to whatever is
    logged next, as the original did, so the final step's margins live in that row)."""
    names = {key.removeprefix("train/") for key in TRAINER_KEYS}
    return [
        h for h in log_history if "step" in h and not any(k.startswith("eval_") for k in h) and names & set(h)
    ]


def history_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training rows under the original trainer's W&B names: step, epoch, train/..."""
    rows = []
    for h in training_logs(log_history):
        row: dict[str, Any] = {"step": h["step"], "epoch": h.get("epoch")}
        row.update({tracker_key(k): v for k, v in h.items() if k not in ("step", "epoch")})
        rows.append(row)
    return rows


@dataclass
class History:
    label: str
    points: dict[str, list[tuple[float, float, float | None]]]  # metric -> (step, value, epoch)
    x_column: str = "step"
    notes: list[str] = field(default_factory=list)

    def steps_per_epoch(self) -> float | None:
        """From logged (step, epoch) pairs: the median of step / epoch."""
        ratios = sorted(s / e for pts in self.points.values() for s, _, e in pts if e and e > 0 and s > 0)
        return ratios[len(ratios) // 2] if ratios else None

    def last_step(self) -> float:
        return max((s for pts in self.points.values() for s, _, _ in pts), default=0.0)

    def logging_interval(self) -> float:
        """The median gap between logged steps (a history's step resolution)."""
        steps = sorted({s for pts in self.points.values() for s, _, _ in pts})
        gaps = sorted(b - a for a, b in zip(steps, steps[1:], strict=False))
        return gaps[len(gaps) // 2] if gaps else 0.0


def _float(text: Any) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _from_rows(label: str, rows: list[dict[str, Any]], x_column: str = "step") -> History:
    points: dict[str, list[tuple[float, float, float | None]]] = {}
    not_numbers: list[str] = []  # cells that hold text: skipped, and said (an empty one is no value)
    for n, row in enumerate(rows, 1):
        step = _float(row.get("step"))
        if step is None:
            if _is_text(row.get("step")):
                not_numbers.append(f"row {n} step {row.get('step')!r}")
            continue
        epoch = _float(row.get("epoch"))
        for key, raw in row.items():
            if key in ("step", "epoch"):
                continue
            value = _float(raw)
            if value is not None:
                points.setdefault(canonical(key), []).append((step, value, epoch))
            elif _is_text(raw):
                not_numbers.append(f"row {n} {key} {raw!r}")
    for pts in points.values():
        pts.sort(key=lambda p: p[0])
    many = f"{len(not_numbers)} cells that are not numbers"
    what = "1 cell that is not a number" if len(not_numbers) == 1 else many
    notes = [f"skipped {what} (first: {not_numbers[0]})"] if not_numbers else []
    return History(label, points, x_column, notes)


def _is_text(raw: Any) -> bool:
    """A cell that holds something other than a number, an empty cell or NaN (W&B's gap)."""
    return isinstance(raw, str) and raw.strip().lower() not in ("", "nan") and _float(raw) is None


def read_run(path: Path) -> History:
    """A run's logged training metrics: metrics.json's log history, else curves.csv."""
    path = Path(path)
    for candidate in (path / "metrics.json", path / "train" / "metrics.json"):
        if candidate.is_file():
            try:
                history = json.loads(candidate.read_text()).get("log_history") or []
            except (json.JSONDecodeError, AttributeError):
                raise ReproError(f"{candidate}: not a repro metrics file") from None
            return _from_rows(str(path), history_rows(history))
    csv_path = path / "curves.csv" if path.is_dir() else path
    if csv_path.is_file() and csv_path.suffix == ".csv":
        with open(csv_path, newline="", encoding="utf-8") as fh:
            return _from_rows(str(path), list(csv.DictReader(fh)))
    raise ReproError(f"{path}: no training history (metrics.json, train/metrics.json or curves.csv)")


def read_published(path: Path, run_name: str | None = None) -> History:
    """A W&B CSV export or a plain step,metric,... CSV."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            raw = list(reader)
    except FileNotFoundError:
        raise ReproError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReproError(f"{path}: not a readable CSV ({exc})") from None
    step_column = next((c for c in STEP_COLUMNS if c in columns), None)
    if step_column is None:
        raise ReproError(f"{path}: no step column (one of {', '.join(STEP_COLUMNS)})")
    epoch_column = next((c for c in EPOCH_COLUMNS if c in columns), None)
    metrics: dict[str, str] = {}  # source column -> metric
    wandb = [c for c in columns if " - " in c and not c.endswith(("__MIN", "__MAX"))]
    label = path.stem
    if wandb:
        runs = sorted({c.rpartition(" - ")[0] for c in wandb})
        if run_name is None and len(runs) > 1:
            raise ReproError(f"{path} holds several W&B runs: pick one with --curve-run ({', '.join(runs)})")
        chosen = run_name or runs[0]
        if chosen not in runs:
            raise unknown(f"W&B run in {path.name}", chosen, runs)
        metrics = {c: c.rpartition(" - ")[2] for c in wandb if c.rpartition(" - ")[0] == chosen}
        label = chosen
    else:
        if run_name is not None:  # a plain CSV is one history: the name would pick nothing
            raise ReproError(
                f"{path} holds no W&B run columns ('RUN - metric'): --curve-run {run_name} picks none"
            )
        skip = {step_column, epoch_column, "Wall time", "_runtime", "_timestamp"}
        metrics = {c: c for c in columns if c not in skip and not c.endswith(("__MIN", "__MAX"))}
    rows = [
        {"step": r.get(step_column), "epoch": r.get(epoch_column) if epoch_column else None}
        | {metric: r.get(column) for column, metric in metrics.items()}
        for r in raw
    ]
    history = _from_rows(label, rows, step_column)
    if step_column == "Step":
        history.notes.append(
            "x from W&B's Step column: it counts log calls; for optimizer steps export with train/global_step"
        )
    if not history.points:
        raise ReproError(f"{path}: no metric values")
    return history


# --------------------------------------------------------------------------- comparison


@dataclass
class MetricReport:
    metric: str
    points: int
    x_range: tuple[float, float] | None
    max_abs_deviation: float | None
    mean_abs_deviation: float | None
    tolerance: float | None
    status: str  # within | outside | no overlap | missing
    first_outside: float | None = None  # the first x (step or epoch) where it leaves the band


@dataclass
class CurveReport:
    run: str
    published: str
    align: str
    align_reason: str
    metrics: list[MetricReport]
    notes: list[str]

    def outside(self) -> list[MetricReport]:
        return [m for m in self.metrics if m.status == "outside"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_alignment(run: History, published: History, align: str = "auto") -> tuple[str, str]:
    if align not in ALIGN:
        raise unknown("alignment", align, ALIGN)
    run_spe = run.steps_per_epoch()
    pub_spe = published.steps_per_epoch()
    pub_source, slack = "logged epochs", 0.01 * (pub_spe or 0)
    if pub_spe is None:  # the last logged step can fall up to one logging interval short
        pub_spe, pub_source = published.last_step() or None, "assumed one epoch"
        slack = max(0.01 * (pub_spe or 0), published.logging_interval())
    described = (
        f"steps per epoch: run {run_spe:.1f}, published {pub_spe:.1f} ({pub_source})"
        if run_spe and pub_spe
        else "steps per epoch unknown"
    )
    if align != "auto":
        return align, f"{align} (asked); {described}"
    if run_spe and pub_spe and abs(run_spe - pub_spe) <= slack:
        return "step", f"optimizer step: same {described}"
    if not (run_spe and pub_spe):
        return "step", f"optimizer step: {described}"
    return "epoch", f"fraction of an epoch: the step counts differ ({described})"


def _x(points: list[tuple[float, float, float | None]], align: str, spe: float | None) -> list[float]:
    if align == "step":
        return [s for s, _, _ in points]
    return [e if e is not None else (s / spe if spe else math.nan) for s, _, e in points]


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    import bisect

    i = bisect.bisect_left(xs, x)
    if i < len(xs) and xs[i] == x:
        return ys[i]
    lo, hi = i - 1, i
    return ys[lo] + (ys[hi] - ys[lo]) * (x - xs[lo]) / (xs[hi] - xs[lo])


def parse_tolerance(text: str | None) -> tuple[float | None, dict[str, float]]:
    """`0.5` (every metric) or `rewards/margins=0.5,loss=0.05`."""
    if not text:
        return None, {}
    overall, per_metric = None, {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.rpartition("=")
        number = _float(value)
        if number is None or number < 0:
            raise ReproError(f"--curve-tolerance expects NUMBER or METRIC=NUMBER, got '{part}'")
        if sep:
            per_metric[canonical(key)] = number
        else:
            overall = number
    return overall, per_metric


def compare(
    run: History,
    published: History,
    metrics: list[str] | None = None,
    *,
    tolerance: str | None = None,
    align: str = "auto",
) -> CurveReport:
    asked = [canonical(m) for m in metrics] if metrics else None
    wanted = asked or [m for m in DEFAULT_METRICS if m in run.points or m in published.points]
    overall, per_metric = parse_tolerance(tolerance)
    mode, reason = choose_alignment(run, published, align)
    run_spe, pub_spe = run.steps_per_epoch(), published.steps_per_epoch() or published.last_step()
    reports = []
    for metric in wanted:
        if metric not in run.points or metric not in published.points:
            if asked:
                side = "the run" if metric not in run.points else "the published history"
                available = sorted(set(run.points) & set(published.points))
                raise ReproError(
                    f"{metric} is not in {side} (both have: {', '.join(available) or 'nothing'})"
                )
            reports.append(MetricReport(metric, 0, None, None, None, None, "missing"))
            continue
        rx = _x(run.points[metric], mode, run_spe)
        ry = [v for _, v, _ in run.points[metric]]
        px = _x(published.points[metric], mode, pub_spe)
        py = [v for _, v, _ in published.points[metric]]
        pairs = sorted(zip(px, py, strict=True))
        px, py = [p[0] for p in pairs], [p[1] for p in pairs]
        lo, hi = max(min(rx), px[0]), min(max(rx), px[-1])
        inside = [(x, y) for x, y in zip(rx, ry, strict=True) if lo <= x <= hi]
        if not inside:
            reports.append(MetricReport(metric, 0, None, None, None, None, "no overlap"))
            continue
        deviations = [abs(y - _interp(x, px, py)) for x, y in inside]
        span_values = [y for x, y in zip(px, py, strict=True) if lo <= x <= hi] + [
            _interp(lo, px, py),
            _interp(hi, px, py),
        ]
        tol = per_metric.get(metric, overall)
        if tol is None:
            tol = DEFAULT_BAND * (max(span_values) - min(span_values))
        worst = max(deviations)
        first = next((x for (x, _), d in zip(inside, deviations, strict=True) if d > tol), None)
        reports.append(
            MetricReport(
                metric,
                len(inside),
                (lo, hi),
                worst,
                sum(deviations) / len(deviations),
                tol,
                "within" if worst <= tol else "outside",
                first,
            )
        )
    if all(r.status in ("missing", "no overlap") for r in reports):
        ours, theirs = ", ".join(sorted(run.points)) or "none", ", ".join(sorted(published.points))
        raise ReproError(
            f"nothing to compare between {run.label} and {published.label} (run: {ours}; published: {theirs})"
        )
    return CurveReport(run.label, published.label, mode, reason, reports, run.notes + published.notes)


def plot(report: CurveReport, run: History, published: History, path: Path) -> dict[str, list[str]]:
    """One panel per compared metric: the run's curve over the published one, with the band.
    Returns the curves drawn per metric."""
    # deferred: matplotlib takes 0.5 s to import; only plots need it
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib takes 0.5 s to import; only plots need it
    import matplotlib.pyplot as plt

    shown = [m for m in report.metrics if m.status in ("within", "outside")]
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.8), squeeze=False)
    run_spe, pub_spe = run.steps_per_epoch(), published.steps_per_epoch() or published.last_step()
    drawn: dict[str, list[str]] = {}
    for ax, m in zip(axes[0], shown, strict=True):
        px = _x(published.points[m.metric], report.align, pub_spe)
        py = [v for _, v, _ in published.points[m.metric]]
        ax.plot(px, py, "--", color="tab:grey", label=f"published ({published.label})")
        ax.fill_between(
            px, [y - m.tolerance for y in py], [y + m.tolerance for y in py], color="grey", alpha=0.15
        )
        rx = _x(run.points[m.metric], report.align, run_spe)
        color = "tab:green" if m.status == "within" else "tab:red"
        ax.plot(rx, [v for _, v, _ in run.points[m.metric]], color=color, label="this run")
        ax.set_title(f"{m.metric}: max |dev| {m.max_abs_deviation:.3g} ({m.status})", fontsize=9)
        ax.set_xlabel("optimizer step" if report.align == "step" else "epoch")
        ax.legend(fontsize=7)
        drawn[m.metric] = [line.get_label() for line in ax.get_lines()]
    fig.suptitle(f"training curves vs published, aligned by {report.align}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn

"""The PNGs a run and `repro compare` write, drawn so a person can read them.

Both figures name what they show (the run, the axes and their units) and never let text
collide: the comparison lists its setting/method labels down the y axis (one row each,
the figure grows with the rows, long labels are shortened with an ellipsis) instead of
annotating points that may sit on top of each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

LABEL_CHARS = 34  # longer setting/method labels are ellipsized
ROW_INCHES = 0.32


def _pyplot():
    # deferred: matplotlib takes 0.5 s to import; only plots need it
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib takes 0.5 s to import; only plots need it
    import matplotlib.pyplot as plt

    return plt


def ellipsize(text: str, limit: int = LABEL_CHARS) -> str:
    """`text` cut to `limit` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def row_label(setting: str, method: str, variant: str) -> str:
    """'setting / method', and under it what the row's configuration changed, wrapped (never cut
    short: two rows that differ only at the end of their variant must read apart)."""
    import textwrap

    head = ellipsize(f"{setting} / {method}")
    if not variant:
        return head
    return "\n".join([head, *textwrap.wrap(f"({variant})", LABEL_CHARS, break_on_hyphens=False)])


def run_title(directory: Path) -> str:
    """'tiny x simpo, run fe1426ff64-seed42' for results/tiny/simpo/fe1426ff64-seed42."""
    directory = Path(directory)
    if directory.parent.parent.name:
        return f"{directory.parent.parent.name} x {directory.parent.name}, run {directory.name}"
    return f"run {directory.name}"


# ---------------------------------------------------------------------------- training curves


def curves_figure(log_history: Sequence[dict[str, Any]], *, title: str):
    """Loss and reward accuracy per optimizer step, training and held-out, titled with the run."""
    plt = _pyplot()
    history = [h for h in log_history if "loss" in h and "step" in h and "train_loss" not in h]
    evals = [h for h in log_history if "eval_loss" in h and "step" in h]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    loss_ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="training loss")
    if evals:
        loss_ax.plot(
            [h["step"] for h in evals], [h["eval_loss"] for h in evals], "o--", label="held-out loss"
        )
    loss_ax.set_xlabel("optimizer step")
    loss_ax.set_ylabel("preference loss")
    loss_ax.set_title("loss")
    accuracy = [(h["step"], h["rewards/accuracies"]) for h in history if "rewards/accuracies" in h]
    if accuracy:
        acc_ax.plot(*zip(*accuracy, strict=True), label="training")
    held_out = [(h["step"], h["eval_rewards/accuracies"]) for h in evals if "eval_rewards/accuracies" in h]
    if held_out:
        acc_ax.plot(*zip(*held_out, strict=True), "o--", label="held-out")
    acc_ax.set_xlabel("optimizer step")
    acc_ax.set_ylabel("reward accuracy (chosen > rejected)")
    acc_ax.set_title("reward accuracy")
    acc_ax.set_ylim(-0.05, 1.05)
    for ax in (loss_ax, acc_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(ellipsize(f"training curves: {title}", 100))
    return fig


def curves(log_history: Sequence[dict[str, Any]], path: Path, *, title: str) -> Path:
    """Write curves.png for one run (see curves_figure)."""
    fig = curves_figure(log_history, title=title)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return Path(path)


# ---------------------------------------------------------------------------- compare


STATUS_COLORS = {"within": "tab:green", "outside": "tab:red"}  # any other status: tab:blue


def axis_label(metric: str) -> str:
    """A compare panel's axis: a score in points, or a length (a metric with no direction:
    repro.evaluation.benchmarks.base.Metric), never a length called a score."""
    from repro.evaluation import benchmarks  # deferred: the registry loads every benchmark module

    found = {m.key: m for _, m in benchmarks.metrics()}.get(metric)
    return "length" if found is not None and found.higher_is_better is None else "score (points)"


def compare_figure(rows: Iterable[Any], metrics: dict[str, str], tolerance: dict[str, float]):
    """One panel per metric, one row per setting/method with a run: published (hollow) vs
    reproduced (filled, +- spread), green within tolerance, red outside, blue where nothing is
    published; tiny's band shaded. A configuration other than the recipe's is a row of its own."""
    plt = _pyplot()
    # deferred: matplotlib takes 0.5 s to import; only plots need it
    from matplotlib.ticker import MaxNLocator

    rows = [r for r in rows if r.runs]
    shown = [m for m in metrics if any(r.metric == m for r in rows)] or list(metrics)
    labels = sorted({(r.setting, r.method, getattr(r, "variant", "")) for r in rows})
    index = {key: i for i, key in enumerate(labels)}
    texts = [row_label(*key) for key in labels]
    lines = max((t.count("\n") + 1 for t in texts), default=1)  # rows as tall as the tallest label
    height = max(2.8, ROW_INCHES * len(labels) * (1 + 0.8 * (lines - 1)) + 1.6)
    fig, axes = plt.subplots(
        1,
        len(shown),
        figsize=(3.6 * len(shown) + 2.6, height),
        sharey=True,
        squeeze=False,
        layout="constrained",  # places titles, tick labels and the legend without overlaps
    )
    for ax, metric in zip(axes[0], shown, strict=True):
        for r in (r for r in rows if r.metric == metric):
            y = index[(r.setting, r.method, getattr(r, "variant", ""))]
            color = STATUS_COLORS.get(r.status, "tab:blue")
            if r.band is not None:
                ax.fill_betweenx([y - 0.3, y + 0.3], r.band[0], r.band[1], color="grey", alpha=0.25, lw=0)
            elif r.published is not None:
                tol = r.tolerance if r.tolerance is not None else tolerance.get(metric, 0.0)
                ax.fill_betweenx(
                    [y - 0.3, y + 0.3], r.published - tol, r.published + tol, color="grey", alpha=0.2, lw=0
                )
                ax.plot(r.published, y, "o", mfc="white", mec="black", ms=6)
            ax.errorbar(r.mean, y, xerr=r.spread or 0, fmt="o", color=color, ms=5, capsize=3)
        ax.set_title(metrics[metric])
        ax.set_xlabel(axis_label(metric))
        ax.set_xlim(left=0)  # win rates and scores: the axis starts at 0
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(axis="x", alpha=0.3)
        if not labels:
            ax.text(0.5, 0.5, "no reproduced runs", ha="center", va="center", transform=ax.transAxes)
    first = axes[0][0]
    first.set_yticks(range(len(labels)))
    first.set_yticklabels(texts, fontsize=8)
    if labels:
        first.set_ylim(len(labels) - 0.5, -0.5)  # first label at the top
    # deferred: matplotlib takes 0.5 s to import; only plots need it
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    legend = [
        Line2D([], [], marker="o", ls="", mfc="white", mec="black", label="published"),
        Line2D([], [], marker="o", ls="", color="tab:green", label="reproduced, within"),
        Line2D([], [], marker="o", ls="", color="tab:red", label="reproduced, outside"),
        Line2D([], [], marker="o", ls="", color="tab:blue", label="reproduced, nothing published"),
        Patch(color="grey", alpha=0.25, label="tolerance, or reference band"),
    ]
    fig.legend(handles=legend, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("repro compare: published vs reproduced (mean over runs, +- std)")
    fig.get_layout_engine().set(w_pad=0.1, wspace=0.06)  # room between panels' end tick labels
    return fig


def compare(rows: Iterable[Any], metrics: dict[str, str], tolerance: dict[str, float], path: Path) -> Path:
    """Write the comparison plot (see compare_figure)."""
    fig = compare_figure(rows, metrics, tolerance)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return Path(path)

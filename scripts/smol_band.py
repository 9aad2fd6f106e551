#!/usr/bin/env python3
"""Derive the smol reference band (results/published/reference_bands.csv) from measured runs.

    .venv/bin/python scripts/smol_band.py RESULTS_DIR [--write]

For each complete benchmark of each smol run under RESULTS_DIR (one run per method), a band is
the 95% interval of that run's own measurement, so a later run (another machine, another
version of repro) lies within it unless it differs by more than the sampling noise of so few
questions:
- AlpacaEval 2 win rate: the run's win rate +- 1.96 x alpaca-eval's standard error of it;
- GSM accuracy: the Clopper-Pearson 95% interval of correct / total (exact for a proportion,
  also when nothing is correct).
Arena-Hard and MT-Bench get no band: SmolLM2-135M as a judge gives almost no parseable verdict.
Each row's note says how it was derived and from which run. `--write` replaces the smol rows of
the CSV (the other settings' rows stay); without it the rows are printed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from scipy.stats import beta

ROOT = Path(__file__).resolve().parent.parent
BANDS = ROOT / "results" / "published" / "reference_bands.csv"
FIELDS = ["setting", "method", "metric", "low", "high", "note"]


def clopper_pearson(correct: int, total: int, level: float = 0.95) -> tuple[float, float]:
    alpha = 1 - level
    low = 0.0 if correct == 0 else beta.ppf(alpha / 2, correct, total - correct + 1)
    high = 1.0 if correct == total else beta.ppf(1 - alpha / 2, correct + 1, total - correct)
    return float(low), float(high)


def rows_of(path: Path) -> list[dict[str, str]]:
    result = json.loads(path.read_text())
    method, run = result["method"], result.get("run_id") or path.parent.name
    benches, rows = result["benchmarks"], []
    ae = benches.get("alpaca_eval2") or {}
    if ae and not ae.get("incomplete") and ae.get("standard_error") is not None:
        wr, se = ae["win_rate"], ae["standard_error"]
        rows.append({
            "metric": "ae2_wr", "low": max(0.0, wr - 1.96 * se), "high": min(100.0, wr + 1.96 * se),
            "note": f"measured {wr:.1f} +- 1.96 x its standard error {se:.1f} on {ae['n_total']} held-out "
                    f"instructions against the starting checkpoint, SmolLM2 judging (run {run})",
        })  # fmt: skip
    gsm = benches.get("gsm") or {}
    if gsm and not gsm.get("incomplete"):
        low, high = clopper_pearson(int(gsm["correct"]), int(gsm["total"]))
        rows.append({
            "metric": "gsm", "low": 100 * low, "high": 100 * high,
            "note": f"measured {gsm['correct']} of {gsm['total']} correct: the Clopper-Pearson 95% "
                    f"interval of that proportion (run {run})",
        })  # fmt: skip
    return [
        {"setting": "smol", "method": method, **r, "low": f"{r['low']:.1f}", "high": f"{r['high']:.1f}"}
        for r in rows
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    found = sorted(args.results.rglob("smol/*/*/*/result.json")) + sorted(
        args.results.rglob("smol/*/*/result.json")
    )
    rows = [r for path in found for r in rows_of(path)]
    if not rows:
        print(f"smol_band: no complete smol benchmark under {args.results}", file=sys.stderr)
        return 1
    if len({(r["method"], r["metric"]) for r in rows}) != len(rows):
        print("smol_band: more than one run of a method: give a folder with one run each", file=sys.stderr)
        return 1
    kept = [r for r in csv.DictReader(BANDS.open(newline="")) if r["setting"] != "smol"]
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept + rows)
    if args.write:
        BANDS.write_text(out.getvalue())
        print(f"{BANDS}: {len(rows)} smol rows")
    else:
        print(out.getvalue(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

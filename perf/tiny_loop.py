"""Time the tiny reproduction loop from scratch: `repro run tiny` for each method, then compare.

Prints, for each method, the wall time of `repro run tiny` and where it went, read from the
run's own record (`repro run --format json`, its `work_done` stages and their breakdowns):

  train     prepare (tiny model, data, BOS check), processes (accelerate + DeepSpeed ZeRO-3 on
            2 CPU processes: start-up, imports, evaluation, saving), of which optimizer steps
  evaluate  load (models, tokenizers, BOS check), generate, judge (gateway and judge calls;
            AlpacaEval's win rate is computed inside alpaca-eval's call), score
  other     the rest of the wall time: the CLI's start and imports, preflight, curves, manifest

and the load average before and after each run (a figure taken on a busy machine says so).
Asserts nothing (timings are reported, not tested). Run with the project's venv:

    .venv/bin/python perf/tiny_loop.py [--methods simpo,dpo] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from repro.perf import load  # the load averages around each run, and when that was busy

REPRO = [sys.executable, "-m", "repro"]


def breakdown(record: dict[str, Any], wall: float) -> dict[str, float]:
    """Seconds by stage of one `repro run --format json` record that trained and evaluated,
    given the run's measured wall time. Raises ValueError when the record did not do both
    (a resumed run: nothing to time)."""
    stages = {w["stage"]: w for w in record.get("work_done") or []}
    missing = [s for s in ("train", "evaluate") if s not in stages]
    if missing:
        raise ValueError(
            f"the run did not {' and '.join(missing)} (work_done: {sorted(stages)}): nothing to time"
        )
    train, evaluate = stages["train"], stages["evaluate"]
    t, e = train.get("breakdown") or {}, evaluate.get("breakdown") or {}
    out = {
        "train": train["seconds"],
        "train.prepare": t.get("prepare"),
        "train.processes": t.get("processes"),
        "train.optimizer_steps": t.get("optimizer_steps"),
        "evaluate": evaluate["seconds"],
        "evaluate.load": e.get("load"),
        "generate": e.get("generate"),
        "judge": e.get("judge"),
        "score": e.get("score"),
        "other": round(wall - train["seconds"] - evaluate["seconds"], 1),
        "total": round(wall, 1),
    }
    return {k: (round(float(v), 1) if v is not None else None) for k, v in out.items()}


def run_method(method: str, results: Path, env: dict[str, str]) -> dict[str, Any]:
    before, t0 = load.averages(), time.time()
    out = subprocess.run(
        [*REPRO, "run", "tiny", "--method", method, "--results", str(results), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.time() - t0
    if out.returncode != 0:
        raise SystemExit(f"repro run tiny --method {method} failed ({out.returncode}): {out.stderr.strip()}")
    record = json.loads(out.stdout)
    after = load.averages()
    busy = load.summary([{"before": before, "after": after}])
    return {
        "method": method,
        "seconds": breakdown(record, wall),
        "win_rate": record["scores"]["ae2_wr"],
        "load_before": before,
        "load_after": after,
        "busy": busy["busy"],
        "busy_note": busy["note"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="simpo,dpo", help="comma-separated methods (default simpo,dpo)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    with tempfile.TemporaryDirectory(prefix="repro-bench-") as tmp:
        env = {**os.environ, "REPRO_CACHE": str(Path(tmp) / "cache"), "REPRO_QUIET": "1"}
        results, start = Path(tmp) / "results", time.time()
        rows = [run_method(method, results, env) for method in methods]
        t0 = time.time()
        subprocess.run(
            [*REPRO, "compare", str(results), "--only-reproduced"], capture_output=True, env=env, check=True
        )
        compare_seconds = round(time.time() - t0, 1)
        total = round(time.time() - start, 1)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if args.json:
        print(
            json.dumps(
                {"machine": machine, "runs": rows, "compare": compare_seconds, "total": total}, indent=1
            )
        )
        return 0
    print(f"machine: {machine}")
    for row in rows:
        s, flag = row["seconds"], "  (busy machine)" if row["busy"] else ""
        print(
            f"repro run tiny --method {row['method']}: {s['total']} s{flag}; "
            f"load average {row['load_before']} -> {row['load_after']}\n"
            f"  train {s['train']} s: prepare {s['train.prepare']}, processes {s['train.processes']} "
            f"(optimizer steps {s['train.optimizer_steps']})\n"
            f"  evaluate {s['evaluate']} s: load {s['evaluate.load']}, generate {s['generate']}, "
            f"judge {s['judge']}, score {s['score']}\n"
            f"  other {s['other']} s (CLI start, preflight, curves, manifest)\n"
            f"  AlpacaEval win rate vs the starting model {row['win_rate']:.1f}"
        )
    print(f"repro compare: {compare_seconds} s")
    print(f"whole loop: {total} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

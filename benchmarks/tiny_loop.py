"""Time the tiny reproduction loop from scratch: `repro run tiny` for SimPO and DPO, then compare.

Prints the seconds of each stage and the total; asserts nothing (timings are reported, not
tested). Run with the project's venv:  .venv/bin/python benchmarks/tiny_loop.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPRO = [sys.executable, "-m", "repro"]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="repro-bench-") as tmp:
        env = {**os.environ, "REPRO_CACHE": str(Path(tmp) / "cache"), "REPRO_QUIET": "1"}
        rows, start = [], time.time()
        for method in ("simpo", "dpo"):
            t0 = time.time()
            out = subprocess.run(
                [
                    *REPRO,
                    "run",
                    "tiny",
                    "--method",
                    method,
                    "--results",
                    str(Path(tmp) / "results"),
                    "--format",
                    "json",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            result = json.loads(out.stdout)
            rows.append((method, round(time.time() - t0, 1), result["timings"], result["scores"]["ae2_wr"]))
        t0 = time.time()
        subprocess.run(
            [*REPRO, "compare", str(Path(tmp) / "results"), "--only-reproduced"],
            capture_output=True,
            env=env,
            check=True,
        )
        compare_seconds = round(time.time() - t0, 1)
        total = round(time.time() - start, 1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    for method, seconds, timings, win_rate in rows:
        print(
            f"repro run tiny --method {method}: {seconds} s "
            f"(train {timings['train']} s, eval {timings['eval']} s), "
            f"AlpacaEval win rate vs the starting model {win_rate:.1f}"
        )
    print(f"repro compare: {compare_seconds} s")
    print(f"whole loop: {total} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Regenerate results/published/released/ from alpaca_eval-format files.

    python scripts/released_stats.py ../shared/data/alpaca_eval

reads <DIR>/model_outputs/<generator>.json, <DIR>/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv
and <DIR>/COMMIT (the alpaca_eval commit they were taken from), and writes one CSV of
per-instruction statistics per released model plus the index (alpaca_eval.yaml). The texts
themselves are not written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from repro.runs.analysis import released

# The SimPO authors' models on the AlpacaEval leaderboard, and the setting x method each is.
MODELS = (
    ("Llama-3-Instruct-8B-SimPO", "llama3-instruct", "simpo"),
    ("gemma-2-9b-it-SimPO", "gemma2-9b-it", "simpo"),
    ("gemma-2-9b-it-DPO", "gemma2-9b-it", "dpo"),
)


def main(folder: Path) -> None:
    commit = (folder / "COMMIT").read_text().split()
    board = released.leaderboard_rows(folder / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv")
    entries = []
    for generator, setting, method in MODELS:
        outputs = json.loads((folder / "model_outputs" / f"{generator}.json").read_text())
        name = f"{generator}.csv"
        released.write_stats(released.RELEASED / name, released.stats_of(outputs))
        entries.append(
            {
                "generator": generator,
                "setting": setting,
                "method": method,
                "stats": name,
                "answers": len(outputs),
                "leaderboard": {k: v for k, v in board[generator].items() if v is not None},
            }
        )
    index = {
        "source": "tatsu-lab/alpaca_eval results/<generator>/model_outputs.json and "
        "its weighted_alpaca_eval_gpt4_turbo leaderboard CSV",
        "commit": commit[0],
        "commit_date": commit[1] if len(commit) > 1 else None,
        "licence": "AlpacaEval data CC BY-NC 4.0: statistics only (instruction hash, length), no texts",
        "made_by": "scripts/released_stats.py",
        "models": entries,
    }
    header = (
        "# The SimPO authors' released AlpacaEval answers, as statistics (repro.runs.analysis.released).\n"
    )
    released.INDEX.write_text(header + yaml.safe_dump(index, sort_keys=False, width=100))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/alpaca_eval"))

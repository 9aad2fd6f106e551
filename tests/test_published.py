"""The published tables equal the seed README cell for cell.

Oracle: the seed document itself (shared/seed/SimPO-README.txt), parsed here by a parser
independent of the code that wrote results/published/scores.csv. Tolerance: exact text.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from repro.runs.analysis import published

# Row labels of the two 5-column tables: "<setting words> <method>[ v0.2] | <model id> | LC | WR | AH"
LABEL = re.compile(
    r"^(?P<setting>Mistral Base 7B|Mistral Instruct 7B|Llama3 Base 8B|Llama3 Instruct 8B|Llama 3 Instruct 8B)"
    r" (?P<method>.+?)(?P<v2> v0\.2)?$"
)
SETTINGS = {
    ("Mistral Base 7B", False): "mistral-base",
    ("Mistral Instruct 7B", False): "mistral-instruct",
    ("Llama3 Base 8B", False): "llama3-base",
    ("Llama3 Instruct 8B", False): "llama3-instruct",
    ("Llama 3 Instruct 8B", True): "llama3-instruct-v0.2",
}
METHODS = {
    "SFT": "sft",
    "RRHF": "rrhf",
    "SLiC-HF": "slic-hf",
    "DPO": "dpo",
    "DPO (Zephyr)": "dpo",
    "IPO": "ipo",
    "CPO": "cpo",
    "KTO": "kto",
    "ORPO": "orpo",
    "R-DPO": "rdpo",
    "SimPO": "simpo",
}
GEMMA_HEADER = (
    "models | AE2 LC | AE2 WR | AE2 Length | AH | AH Length | GSM | GSM Length | MMLU | MMLU Length |"
)


def seed_rows(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """(setting, method) -> {column: text} for every score row of the seed's three tables."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    lines = text.splitlines()
    gemma_start = lines.index(GEMMA_HEADER)
    gemma_cols = [
        "ae2_lc",
        "ae2_wr",
        "ae2_length",
        "ah",
        "ah_length",
        "gsm",
        "gsm_length",
        "mmlu",
        "mmlu_length",
    ]
    for line in lines[gemma_start + 2 : gemma_start + 5]:
        name, *cells = [c.strip() for c in line.split("|")][:-1]
        method = {"google/gemma-2-9b-it": "sft"}.get(name) or name.rsplit("-", 1)[1].lower()
        rows[("gemma2-9b-it", method)] = {
            "model_id": name,
            **dict(zip(gemma_cols, cells, strict=True)),
        }
    for line in lines:
        parts = [c.strip() for c in line.split("|")]
        if len(parts) == 6 and parts[5] == "" and (m := LABEL.match(parts[0])):
            setting = SETTINGS[(m["setting"], bool(m["v2"]))]
            key = (setting, METHODS[m["method"]])
            assert key not in rows, f"duplicate seed row {key}"
            rows[key] = {
                "model": parts[0],
                "model_id": parts[1],
                "ae2_lc": parts[2],
                "ae2_wr": parts[3],
                "ah": parts[4],
            }
    return rows


@pytest.fixture(scope="module")
def seed(shared):
    return seed_rows((shared / "seed" / "SimPO-README.txt").read_text(encoding="utf-8"))


def test_seed_has_52_rows(seed):
    assert len(seed) == 52
    assert sum(s == "llama3-instruct-v0.2" for s, _ in seed) == 9
    assert sum(s == "gemma2-9b-it" for s, _ in seed) == 3


def test_library_tables_equal_seed_cell_for_cell(seed):
    rows = published.load()
    assert len(rows) == 52
    ours = {(r.setting, r.method): r for r in rows}
    assert set(ours) == set(seed)
    for key, cells in seed.items():
        row = ours[key]
        for column, text in cells.items():
            value = row.text[column] if column in row.text else getattr(row, column)
            assert value == text, f"{key} {column}: ours {value!r}, seed {text!r}"
        # cells the seed leaves empty stay empty
        for metric in published.columns():
            if metric not in cells:
                assert row.scores[metric] is None, f"{key} {metric} should be empty"


def test_cli_csv_lists_all_rows_with_every_seed_cell(cli, seed):
    proc = cli("published", "--format", "csv", check=True)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 52
    for row in rows:
        cells = seed[(row["setting"], row["method"])]
        for column, text in cells.items():
            assert row[column] == text, (row["setting"], row["method"], column)


def test_errata_annotate_the_seed_values(cli):
    proc = cli(
        "published",
        "--setting",
        "llama3-instruct",
        "--method",
        "cpo",
        "--format",
        "json",
        check=True,
    )
    (row,) = json.loads(proc.stdout)
    assert row["ae2_lc"] == 33.1  # the seed's value stays the default
    erratum = {e["cell"]: e for e in row["errata"]}
    assert erratum["ae2_lc"]["alternative"] == 28.9
    assert erratum["ah"]["alternative"] == 28.8
    flagged = {(r.setting, r.method) for r in published.load() if r.errata}
    assert {
        ("mistral-base", "simpo"),
        ("mistral-base", "rdpo"),
        ("llama3-instruct", "cpo"),
    } <= flagged


def test_table_marks_errata(cli):
    proc = cli("published", "--setting", "mistral-base", check=True)
    assert "21.4*" in proc.stdout and "9.9*" in proc.stdout
    assert "16.6*" not in proc.stdout


def test_filters_and_unknown_values(cli):
    proc = cli("published", "--setting", "llama3-instruct-v0.2", "--format", "json", check=True)
    assert {r["method"] for r in json.loads(proc.stdout)} == {
        "rrhf",
        "slic-hf",
        "dpo",
        "ipo",
        "cpo",
        "kto",
        "orpo",
        "rdpo",
        "simpo",
    }
    bad = cli("published", "--setting", "llama-3-instruct")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "did you mean 'llama3-instruct'" in bad.stderr

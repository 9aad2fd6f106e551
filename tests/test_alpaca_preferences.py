"""The smol setting's data: AlpacaEval's real GPT-4-Turbo annotations (shared/) binarized as
UltraFeedback was. Oracle: the rule recomputed here from the raw files (score = preference - 1,
the reference 0.5; chosen = the best candidate, rejected strictly lower), and the split's
promise: no held-out (evaluated) instruction is ever trained on. Bad files are one line naming
the file, before any work."""

from __future__ import annotations

import json
import shutil

import pytest

from repro.data import alpaca_preferences as ap
from repro.errors import ReproError

CONFIG = ap.Binarization(max_prompt_chars=400, max_answer_chars=600, heldout=64, seed=42)


@pytest.fixture(scope="module")
def source(shared):
    return shared / "data" / "alpaca_eval"


@pytest.fixture(scope="module")
def binarized(source):
    return ap.binarize(source, CONFIG)


def test_pairs_follow_the_ultrafeedback_rule_recomputed_from_the_raw_files(source, binarized):
    train, test, heldout, report = binarized
    raw: dict[str, dict[str, float]] = {}
    for path in sorted((source / "preferences").glob("*.json")) + sorted(
        (source / "annotations").glob("*.json")
    ):
        for row in json.loads(path.read_text()):
            raw.setdefault(row["instruction"], {})[row["output_2"]] = float(row["preference"]) - 1
    reference = {r["instruction"]: r["output"] for r in json.loads((source / ap.REFERENCE).read_text())}
    assert report.files == 17 and report.annotations == 17 * 805 and report.instructions == 805
    for row in train + test:
        scores = {**raw[row["prompt"]], reference[row["prompt"]]: 0.5}
        chosen, rejected = row["chosen"][-1]["content"], row["rejected"][-1]["content"]
        candidates = {t: s for t, s in scores.items() if t.strip() and len(t) <= CONFIG.max_answer_chars}
        assert scores[chosen] == max(candidates.values()) and abs(row["score_chosen"] - scores[chosen]) < 1e-6
        assert scores[rejected] < scores[chosen] and rejected in candidates
    assert len(heldout) == 64 and {r["prompt"] for r in test} <= set(heldout)
    assert not {r["prompt"] for r in train} & set(heldout)  # an evaluated instruction is never trained on
    assert all(len(r["prompt"]) <= CONFIG.max_prompt_chars for r in train)


def test_the_split_and_the_pairs_are_deterministic_and_seeded(source, binarized):
    again = ap.binarize(source, CONFIG)
    assert again[0] == binarized[0] and again[2] == binarized[2]
    other = ap.binarize(source, ap.Binarization(**{**CONFIG.__dict__, "seed": 7}))
    assert other[2] != binarized[2]


def _copy(source, tmp_path):
    folder = tmp_path / "alpaca"
    (folder / "preferences").mkdir(parents=True)
    (folder / "reference").mkdir()
    shutil.copy(source / ap.REFERENCE, folder / ap.REFERENCE)
    shutil.copy(source / "preferences" / "claude-2.1.json", folder / "preferences")
    return folder


def test_malformed_files_are_one_line_naming_the_file(source, tmp_path):
    folder = _copy(source, tmp_path)
    bad = folder / "preferences" / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ReproError, match="broken.json: not a JSON file"):
        ap.read(folder)
    bad.write_text(json.dumps([{"instruction": "x", "output_1": "y"}]))
    with pytest.raises(ReproError, match="broken.json: row 0 is not an AlpacaEval annotation"):
        ap.read(folder)
    bad.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ReproError, match="broken.json: expected a JSON list of annotations, got dict"):
        ap.read(folder)
    bad.unlink()
    (folder / ap.REFERENCE).unlink()
    with pytest.raises(ReproError, match="no reference/gpt4_1106_preview.json"):
        ap.read(folder)


def test_unusable_preferences_are_counted_not_dropped_silently(source, tmp_path):
    folder = _copy(source, tmp_path)
    rows = json.loads((source / "preferences" / "gemma-7b-it.json").read_text())[:3]
    rows[0]["preference"], rows[1]["preference"], rows[2]["preference"] = None, 2.5, "nan"
    (folder / "preferences" / "odd.json").write_text(json.dumps(rows))
    report = ap.Report()
    ap.read(folder, report)
    assert report.skipped == {"no preference": 1, "preference outside [1, 2]": 2}


def test_run_with_malformed_data_is_one_line_before_any_work(source, tmp_path, cli):
    folder = _copy(source, tmp_path)
    (folder / "preferences" / "broken.json").write_text("[1, 2]")
    results = tmp_path / "results"
    proc = cli("run", "smol", "--method", "simpo", "--data", str(folder), "--results", str(results))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "broken.json: row 0 is not an AlpacaEval annotation" in proc.stderr
    assert not results.exists() or not any(results.rglob("*.json"))

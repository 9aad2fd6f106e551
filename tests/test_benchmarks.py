"""The benchmark registry: built-ins declared in one module each, your own benchmark in one file
(--bench-path), and a bad plugin as one line naming its file.

Oracle for the metric declarations: the published tables (results/published/scores.csv columns
are exactly the metrics declared `published`) and the tolerances compare used before the
registry (+-1 point for AE2/AH/GSM/MMLU, +-20 characters for the lengths)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from repro import paths
from repro.errors import ReproError
from repro.evaluation import benchmarks, judgecost
from repro.runs import compare, published

README = paths.ROOT / "README.md"


def readme_example() -> str:
    """The README's own-benchmark example, exactly as printed."""
    text = README.read_text()
    after = text.split("<!-- own-benchmark-example -->", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_built_ins_declare_the_published_columns_and_tolerances():
    assert benchmarks.names()[:5] == ["alpaca_eval2", "arena_hard", "mt_bench", "gsm", "mmlu_redux"]
    with open(paths.PUBLISHED / "scores.csv") as fh:
        header = fh.readline().strip().split(",")
    assert list(published.columns()) == [c for c in header if c in published.column_titles()]
    assert set(published.columns()) == set(header) - set(published.ID_COLUMNS)
    assert compare.default_tolerance() == {
        "ae2_lc": 1.0, "ae2_wr": 1.0, "ah": 1.0, "gsm": 1.0, "gsm_length": 20.0, "mmlu": 1.0,
        "mmlu_length": 20.0,
    }  # fmt: skip
    assert benchmarks.judged(benchmarks.names()[:5]) == ["alpaca_eval2", "arena_hard", "mt_bench"]
    assert benchmarks.headline() == ["ae2_lc", "ae2_wr", "ah", "mt_bench"]
    # the judge-cost estimate reads each benchmark's declaration: 805 + 1000 + 160 calls
    assert judgecost.estimate(["alpaca_eval2", "arena_hard", "mt_bench", "gsm"])["total_calls"] == 1965


def write_plugin(folder: Path, body: str, name: str = "plugin.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body)
    return path


PLUGIN_HEAD = "from repro.evaluation.benchmarks import Benchmark, Metric, register\n\n"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("import no_such_module_anywhere\n", r"plugin\.py:1: ModuleNotFoundError"),
        (PLUGIN_HEAD + "@register\nclass B(Benchmark):\n    name = 'b1'\n    title = 'B'\n"
         "    def scores(self, output):\n        return {}\n", "defines no `run`"),
        (PLUGIN_HEAD + "@register\nclass B(Benchmark):\n    name = 'alpaca_eval2'\n    title = 'B'\n"
         "    def run(self, ev, judge=None):\n        return {}\n"
         "    def scores(self, output):\n        return {}\n", "clashes with a built-in benchmark"),
        (PLUGIN_HEAD + "@register\nclass B(Benchmark):\n    name = 'b2'\n    title = 'B'\n"
         "    metrics = (Metric('ae2_lc', 'mine'),)\n    def run(self, ev, judge=None):\n        return {}\n"
         "    def scores(self, output):\n        return {}\n", "metric 'ae2_lc' is already alpaca_eval2's"),
        ("x = 1\n", "registers no benchmark"),
        ("def broken(:\n", r"plugin\.py:1: SyntaxError"),
    ],
)  # fmt: skip
def test_a_bad_plugin_is_one_line_naming_its_file(tmp_path, body, says):
    path = write_plugin(tmp_path, body)
    with pytest.raises(ReproError) as caught:
        benchmarks.load_path(path)
    message = str(caught.value)
    assert str(path) in message and re.search(says, message) and "\n" not in message
    assert "b1" not in benchmarks.names() and "b2" not in benchmarks.names()


def test_a_bad_plugin_on_the_command_line(cli, tmp_path):
    path = write_plugin(tmp_path, "raise RuntimeError('my bug')\n")
    out = cli("eval", str(tmp_path), "--setting", "tiny", "--bench-path", str(path))
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.strip() == f"repro: error: {path}:1: RuntimeError: my bug"
    missing = cli("compare", str(tmp_path), "--bench-path", str(tmp_path / "nope.py"))
    assert missing.returncode != 0 and len(missing.stderr.splitlines()) == 1 and "nope.py" in missing.stderr


@pytest.mark.e2e
def test_the_readme_example_runs_end_to_end_on_the_tiny_model(cli, tiny_results, tmp_path):
    """The README's example, verbatim: `repro run` evaluates it beside a built-in on the tiny
    run (trained once per session; a copy, so the shared runs stay as they are), it lands in
    result.json and `repro compare` lists its metric; `repro eval` runs it on the checkpoint."""
    plugin = write_plugin(tmp_path / "mine", readme_example(), "capitals.py")
    questions = [("What is the capital of France?", "Paris"), ("What is the capital of Japan?", "Tokyo"),
                 ("What is the capital of Peru?", "Lima")]  # fmt: skip
    (plugin.parent / "capitals.jsonl").write_text(
        "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in questions)
    )
    results = tmp_path / "results"
    shutil.copytree(tiny_results, results)
    run = cli(
        "run", "tiny", "--method", "simpo", "--bench", "gsm,capitals", "--bench-path", str(plugin),
        "--results", str(results), "--format", "json", check=True,
    )  # fmt: skip
    record = json.loads(run.stdout)
    assert record["benchmarks"]["capitals"]["n"] == 3 and 0.0 <= record["scores"]["capitals_em"] <= 100.0
    assert "gsm" in record["scores"] and record["complete"] and record["schema"] == "repro.result/2"
    run_dir = Path(record["run_dir"])
    answers = (run_dir / "eval" / "capitals" / "answers.jsonl").read_text().splitlines()
    assert len(answers) == 1 + 3  # the generator's identity, then one line per answer
    key = json.loads((run_dir / "eval" / "evaluation.json").read_text())["key"]
    assert key["plugins"]["capitals"] == __import__("hashlib").sha256(plugin.read_bytes()).hexdigest()
    assert cli("verify", str(run_dir), check=True).returncode == 0

    rows = json.loads(
        cli("compare", str(results), "--bench-path", str(plugin), "--format", "json", check=True).stdout
    )["rows"]
    mine = [r for r in rows if r["metric"] == "capitals_em"]
    assert len(mine) == 1 and mine[0]["status"] == "no published value" and mine[0]["runs"] == 1
    plain = json.loads(cli("compare", str(results), "--format", "json", check=True).stdout)["rows"]
    assert not [r for r in plain if r["metric"] == "capitals_em"]  # without the plugin: not a metric

    out = tmp_path / "eval"
    evaluated = cli(
        "eval", str(run_dir / "train" / "model"), "--setting", "tiny", "--bench", "capitals",
        "--bench-path", str(plugin), "-o", str(out), check=True,
    )  # fmt: skip
    assert "Capitals (exact match)" in evaluated.stdout
    assert json.loads((out / "result.json").read_text())["benchmarks"]["capitals"]["n"] == 3

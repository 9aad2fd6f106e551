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
from repro.runs.analysis import compare, published

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
        ("from repro.evaluation.benchmarks import DataOption\n" + PLUGIN_HEAD + "@register\n"
         "class B(Benchmark):\n    name = 'b1'\n    title = 'B'\n"
         "    data_options = (DataOption('zeroeval_data', 'file', 'mine'),)\n"
         "    def run(self, ev, judge=None):\n        return {}\n"
         "    def scores(self, output):\n        return {}\n",
         "data option 'zeroeval_data' is declared otherwise by another benchmark"),
        (PLUGIN_HEAD + "@register\nclass B(Benchmark):\n    name = 'b2'\n    title = 'B'\n"
         "    data_options = ('--my-data',)\n    def run(self, ev, judge=None):\n        return {}\n"
         "    def scores(self, output):\n        return {}\n",
         r"'--my-data' is not a DataOption\(name, file\|dir\)"),
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


def test_a_benchmark_declares_its_data_option_and_the_cli_offers_it(tmp_path):
    """A benchmark's data option is declared in its own module only: `repro run` and `repro eval`
    list the flag (here a plugin's, loaded through REPRO_BENCH_PATH as a SLURM job inherits it),
    check its path while parsing, and the evaluation hands the path to the benchmark by name."""
    import os
    import subprocess
    import sys

    from repro.evaluation.eval_options import EvalOptions

    flags = {o.flag for o in benchmarks.data_options()}
    built_in = {"--alpaca-reference", "--lc-data", "--arena-hard-data", "--mt-bench-data", "--zeroeval-data"}
    assert built_in <= flags
    plugin = write_plugin(tmp_path / "plugin", TOY_DATA_PLUGIN)
    env = {**os.environ, benchmarks.ENV: str(plugin), "COLUMNS": "200"}

    def repro(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "repro", *args], env=env, capture_output=True, text=True)

    for command in ("run", "eval"):
        shown = repro(command, "--help").stdout
        assert "--toy-data DIR" in shown and "Folder of toy questions." in shown
        assert "--zeroeval-data DIR" in shown
    bad = repro("eval", str(tmp_path), "--setting", "tiny", "--toy-data", str(tmp_path / "absent"))
    assert bad.returncode != 0 and len(bad.stderr.splitlines()) == 1 and "--toy-data" in bad.stderr
    given = EvalOptions(data_paths={"zeroeval_data": tmp_path, "lc_data": None})
    assert given.data_path("zeroeval_data") == tmp_path and given.data_path("lc_data") is None
    assert EvalOptions.from_json(given.to_json(), "plan") == given


TOY_DATA_PLUGIN = (
    "from repro.evaluation.benchmarks import DataOption\n" + PLUGIN_HEAD + "@register\n"
    "class Toy(Benchmark):\n"
    "    name = 'toy_data_bench'\n"
    "    title = 'Toy'\n"
    "    data_options = (DataOption('toy_data', 'dir', 'Folder of toy questions.'),)\n"
    "    def run(self, ev, judge=None):\n"
    "        return {'data': str(ev.options.data_path('toy_data'))}\n"
    "    def scores(self, output):\n"
    "        return {}\n"
)


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
    evaluation = json.loads((run_dir / "eval" / "evaluation.json").read_text())
    folder = evaluation["folders"]["capitals"]  # a finished run's new benchmark: its own folder
    answers = (run_dir / folder / "answers.jsonl").read_text().splitlines()
    assert len(answers) == 1 + 3  # the generator's identity, then one line per answer
    benchmarks.load_path(plugin)
    assert (
        evaluation["key"]["benchmarks"]["capitals"]["plugin"] == benchmarks.sources(["capitals"])["capitals"]
    )
    assert set(benchmarks.inputs("capitals")) == {"capitals.jsonl"}  # as the example declares
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


ECHO = """from pathlib import Path

from repro.evaluation.benchmarks import Benchmark, Metric, register
from repro.evaluation.generation.decoding import Decoding

WORDS = Path(__file__).with_name("words.txt")


@register
class Echo(Benchmark):
    name = "NAME"
    title = "Echo words"
    metrics = (Metric("NAME_words", "Echo words", tolerance=5.0),)
    INPUTS

    def run(self, ev, judge=None):
        words = WORDS.read_text().split()[: ev.limit]
        answers = ev.ask(self.name, words, Decoding(mode="greedy", max_new_tokens=4))
        RUN
        return {"words": sum(len(a.split()) for a in answers) / len(words)}

    def scores(self, output):
        return {"SCORE": output["words"]}
"""


def echo_plugin(folder: Path, name: str, *, inputs: str = "", run: str = "", score: str = "") -> Path:
    body = ECHO.replace("INPUTS", inputs).replace("RUN", run or "pass").replace("NAME", name)
    path = write_plugin(folder, body.replace("SCORE", score or f"{name}_words"), f"{name}.py")
    (folder / "words.txt").write_text("alpha beta gamma delta\n")
    return path


def test_a_plugins_data_is_part_of_its_identity(tmp_path):
    """Issue 32, 1.3: adding a line to the questions file beside a plugin changed nothing: repro
    said every stage was done and reported the old score (only the .py file was hashed)."""
    plugin = echo_plugin(tmp_path / "default", "echo_default")
    benchmarks.load_path(plugin)
    before = benchmarks.sources(["echo_default"])["echo_default"]
    (plugin.parent / "words.txt").write_text("alpha beta gamma delta\nepsilon\n")
    after = benchmarks.sources(["echo_default"])["echo_default"]
    assert before != after  # by default, the files beside the plugin are its inputs
    (plugin.parent / "results").mkdir()
    (plugin.parent / "results" / "result.json").write_text("{}")  # results below it are not
    assert benchmarks.sources(["echo_default"])["echo_default"] == after

    declared = echo_plugin(tmp_path / "declared", "echo_declared", inputs='inputs = ("words.txt", "data")')
    (declared.parent / "data").mkdir()
    (declared.parent / "data" / "rules.yaml").write_text("a: 1\n")
    benchmarks.load_path(declared)
    first = benchmarks.sources(["echo_declared"])["echo_declared"]
    (declared.parent / "notes.md").write_text("not an input")
    assert benchmarks.sources(["echo_declared"])["echo_declared"] == first
    (declared.parent / "data" / "rules.yaml").write_text("a: 2\n")
    assert benchmarks.sources(["echo_declared"])["echo_declared"] != first
    assert set(benchmarks.inputs("echo_declared")) == {"words.txt", "data/rules.yaml"}
    missing = echo_plugin(tmp_path / "missing", "echo_missing", inputs='inputs = ("gone.jsonl",)')
    benchmarks.load_path(missing)
    with pytest.raises(ReproError, match=r"echo_missing\.py: benchmark 'echo_missing' declares input"):
        benchmarks.sources(["echo_missing"])


def test_two_versions_of_a_plugin_are_not_replicates(tmp_path, cli):
    """Issue 32, 1.3: seed 42 judged with plugin v1 and seed 43 with v2 were averaged into one
    row ('Echo words 18.00 +- 8.49, 2 runs'). A plugin's metric is averaged only over runs of
    the same plugin; the built-in metrics of the same runs still are."""
    from repro import io
    from repro.runs.results import verify
    from tests.test_trust import write_run

    plugin = echo_plugin(tmp_path / "plugin", "echo")
    for name, seed, words, version in (("seed42", 42, 24.0, "a" * 64), ("seed43", 43, 12.0, "b" * 64),
                                       ("seed44", 44, 14.0, "b" * 64)):  # fmt: skip
        run = write_run(tmp_path / "results", name, overrides=(f"seed={seed}",))
        record = json.loads((run / "result.json").read_text())
        record["scores"]["echo_words"] = words
        record["benchmarks"]["echo"] = {"words": words}
        record["sources"] = {"echo": version}
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["files"][verify.RECORD] = verify.record_sha256(record)
        io.write_json(run / "manifest.json", manifest)
        io.write_json(run / "result.json", record)
    out = cli("compare", str(tmp_path / "results"), "--bench-path", str(plugin), "--format", "json")
    rows = json.loads(out.stdout)["rows"]
    echo = {r["variant"]: r for r in rows if r["metric"] == "echo_words"}
    assert {v: (r["runs"], r["reproduced_mean"]) for v, r in echo.items()} == {
        "echo aaaaaaaa": (1, 24.0),
        "echo bbbbbbbb": (2, 13.0),
    }
    (ae2,) = [r for r in rows if r["metric"] == "ae2_lc"]
    assert ae2["runs"] == 3 and ae2["variant"] == ""


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"score": "echo_wordz"}, "benchmark 'echo' scores() returned 'echo_wordz', which its metrics "
                                  "do not declare (declared: echo_words)"),
        ({"run": "raise RuntimeError('plugin bug')"}, "benchmark 'echo' failed: RuntimeError: plugin bug"),
    ],
)  # fmt: skip
def test_a_plugins_own_mistake_is_one_line_naming_its_file(change, says, tmp_path, cli):
    """Issue 32, 1.4 and 3: a plugin whose scores() returned an undeclared key exited 0, stored it
    and compare showed nothing; one whose run() raised printed a traceback."""
    from tests.conftest import make_generation_model

    model = make_generation_model(tmp_path / "model", tokenizer_adds_bos=False)
    plugin = echo_plugin(tmp_path / "plugin", "echo", **change)
    out = cli("eval", str(model), "--setting", "tiny", "--bench", "echo", "--bench-path", str(plugin),
              "--output", str(tmp_path / "eval"))  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip() == f"repro: error: {plugin}: {says}"
    assert not (tmp_path / "eval" / "result.json").exists()


def readme_judged_example() -> str:
    """The README's judged example, exactly as printed."""
    after = README.read_text().split("<!-- judged-benchmark-example -->", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.mark.e2e
def test_the_readme_judged_example_runs_end_to_end_under_the_rule_judge(cli, tiny_results, tmp_path):
    """Issue 32, 4: the README's judged example, verbatim, judged by the tiny setting's rule
    judge through the plugin's own rule() (it used to be HTTP 400 'unrecognized judge prompt'),
    beside the run's earlier benchmarks; a line added to its questions file is evaluated again
    (1.3), and the earlier benchmarks stay in the result (2.3)."""
    plugin = write_plugin(tmp_path / "mine", readme_judged_example(), "polite.py")
    questions = plugin.parent / "polite.jsonl"
    questions.write_text(
        "".join(json.dumps({"question": q}) + "\n" for q in ("hi", "what is the cat ?", "no"))
    )
    results = tmp_path / "results"
    shutil.copytree(tiny_results, results)
    args = ("run", "tiny", "--method", "simpo", "--bench", "polite", "--bench-path", str(plugin),
            "--results", str(results), "--format", "json")  # fmt: skip
    record = json.loads(cli(*args, check=True).stdout)
    polite = record["benchmarks"]["polite"]
    assert polite["n"] == 3 and polite["failed"] == 0 and record["complete"]
    assert 0.0 <= record["scores"]["polite_rate"] <= 100.0
    assert record["scores"]["ah"] is not None and record["scores"]["ae2_wr"] is not None  # kept
    with questions.open("a") as fh:
        fh.write(json.dumps({"question": "tell me about the dog ."}) + "\n")
    again = json.loads(cli(*args, check=True).stdout)
    assert again["benchmarks"]["polite"]["n"] == 4 and [w["benchmarks"] for w in again["work_done"]] == [
        ["polite"]
    ]
    assert cli("verify", again["run_dir"]).returncode == 0
    rows = json.loads(cli("compare", str(results), "--bench-path", str(plugin), "--format", "json",
                          check=True).stdout)["rows"]  # fmt: skip
    assert [r["runs"] for r in rows if r["metric"] == "polite_rate"] == [1]

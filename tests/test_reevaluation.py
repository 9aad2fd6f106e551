"""A finished run evaluated again: new benchmarks add to the earlier ones, a failed
re-evaluation keeps the earlier complete result and fails, a changed plugin is evaluated into
the new evaluation's own folder (issue 32, 2.3 and 2.4).

Before: `repro run` with `--bench alpaca_eval2,mine --bench-path ...` on a finished run replaced
result.json, and its Arena-Hard, MT-Bench, GSM and MMLU scores vanished from it and from
compare; a re-evaluation through a judge that gives no verdict exited 0 with "incomplete:
arena_hard, mt_bench" and compare then skipped the run; a changed plugin stopped the rerun with
"answers.jsonl holds answers of another generation ...; delete it or choose another --output".

The runs are `make tiny`'s (trained once per session, copied here); the judge that gives no
verdict is a scripted OpenAI-compatible server on 127.0.0.1 (tests/judge_servers.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.judge_servers import JudgeServer, no_verdict
from tests.test_benchmarks import echo_plugin

pytestmark = pytest.mark.e2e


def snapshot(run: Path) -> dict[str, str]:
    names = ("result.json", "manifest.json", "eval/evaluation.json")
    return {n: hashlib.sha256((run / n).read_bytes()).hexdigest() for n in names}


@pytest.fixture
def results(tiny_results, tmp_path) -> Path:
    shutil.copytree(tiny_results, tmp_path / "results")
    return tmp_path / "results"


def test_new_benchmarks_add_to_the_earlier_ones(results, tmp_path, cli):
    (run,) = (results / "tiny" / "simpo").iterdir()
    before = json.loads((run / "result.json").read_text())
    assert {"ah", "mt_bench", "gsm", "mmlu"} <= {k for k, v in before["scores"].items() if v is not None}
    plugin = echo_plugin(tmp_path / "plugin", "echo")
    added = cli("run", "tiny", "--method", "simpo", "--results", str(results), "--bench", "alpaca_eval2,echo",
                "--bench-path", str(plugin), "--format", "json", check=True)  # fmt: skip
    after = json.loads(added.stdout)
    assert [w["benchmarks"] for w in after["work_done"]] == [["echo"]]  # AlpacaEval 2 was done already
    for key in ("ae2_wr", "ah", "mt_bench", "gsm", "mmlu"):
        assert after["scores"][key] == before["scores"][key], key
    assert after["scores"]["echo_words"] is not None and after["complete"]
    assert cli("verify", str(run)).returncode == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["tokenizer_checks"] == json.loads((run / "result.json").read_text())["bos_check"]
    rows = json.loads(cli("compare", str(results), "--bench-path", str(plugin), "--format", "json",
                          check=True).stdout)["rows"]  # fmt: skip
    ours = {r["metric"] for r in rows if r["method"] == "simpo" and r["runs"]}
    assert {"ae2_wr", "echo_words"} <= ours

    first = json.loads((run / "eval" / "evaluation.json").read_text())["folders"]["echo"]
    assert first.startswith("eval/rerun-")  # a finished run's new benchmark: the evaluation's own folder
    # 2.4: the plugin changed (its decoding): its answers are generated again, beside the earlier ones
    plugin.write_text(plugin.read_text().replace("max_new_tokens=4", "max_new_tokens=6"))
    again = json.loads(cli("run", "tiny", "--method", "simpo", "--results", str(results), "--bench", "echo",
                           "--bench-path", str(plugin), "--format", "json", check=True).stdout)  # fmt: skip
    assert [w["benchmarks"] for w in again["work_done"]] == [["echo"]]
    record = json.loads((run / "eval" / "evaluation.json").read_text())
    folder = record["folders"]["echo"]
    assert folder.startswith("eval/rerun-") and folder != first and (run / folder / "answers.jsonl").exists()
    assert (run / first / "answers.jsonl").exists()  # the earlier version's answers stay
    assert again["scores"]["ah"] == before["scores"]["ah"] and cli("verify", str(run)).returncode == 0


def test_a_failed_re_evaluation_keeps_the_earlier_complete_result(results, cli):
    (run,) = (results / "tiny" / "simpo").iterdir()
    before = snapshot(run)
    with JudgeServer(no_verdict) as judge:
        proc = cli("run", "tiny", "--method", "simpo", "--results", str(results),
                   "--bench", "arena_hard,mt_bench", "--judge-url", judge.url)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        "re-evaluation incomplete (arena_hard, mt_bench): the earlier complete result stands" in proc.stderr
    )
    assert snapshot(run) == before  # result.json, manifest.json and the record untouched
    attempts = list((run / "eval").glob("rerun-*/evaluation.json"))
    assert len(attempts) == 1 and not json.loads(attempts[0].read_text())["benchmarks"]["arena_hard"]["score"]
    checked = cli("verify", str(run))
    assert (
        checked.returncode == 0 and "an evaluation attempt that is not part of the result" in checked.stderr
    )
    out = json.loads(cli("compare", str(results), "--format", "json", check=True).stdout)
    assert not [s for s in out["skipped"] if "simpo" in s["path"]]  # still compared


# `repro run` in a process that dies (as under kill -9) when it is about to write result.json:
# the evaluation's record and the manifest are written, the run's result is not.
KILLED_BEFORE_RESULT = """
import os, sys
from repro.runs.results import result
write = result.RunResult.write
def die(self, path, *args, **kwargs):
    if os.path.basename(str(path)) == "result.json":
        os._exit(137)
    return write(self, path, *args, **kwargs)
result.RunResult.write = die
from repro.cli import main
sys.argv = ["repro", *sys.argv[1:]]
main()
"""


def test_a_rerun_killed_before_its_result_is_written_is_recorded_by_the_next(results, tmp_path, cli):
    """A finished run evaluated again (a new benchmark) and killed between its manifest and its
    result.json kept the earlier result.json: the next rerun found every stage done and showed the
    earlier scores, without the new benchmark, and `repro verify` and `compare` failed the run."""
    (run,) = (results / "tiny" / "simpo").iterdir()
    plugin = echo_plugin(tmp_path / "plugin", "echo")
    args = ["run", "tiny", "--method", "simpo", "--results", str(results), "--bench", "alpaca_eval2,echo",
            "--bench-path", str(plugin)]  # fmt: skip
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_RESULT, *args], capture_output=True, text=True, timeout=600
    )
    assert killed.returncode == 137, killed.stderr[-2000:]
    again = json.loads(cli(*args, "--format", "json", check=True).stdout)
    assert again["work_done"] == []  # the evaluation was done: only the result is written
    assert again["scores"].get("echo_words") is not None and again["complete"]
    assert cli("verify", str(run)).returncode == 0
    assert json.loads((run / "result.json").read_text())["scores"] == again["scores"]

"""The judge's identity: checked before any judging (repro.evaluation.judge.identity), carried
into results and `repro compare`.

The probe runs against a real HTTP server on 127.0.0.1 whose answers are scripted here: one
that serves the asked model with log-probs (accepted), one without log-probs, one that
answers as another model, one that does not list the asked model, one whose top log-probs
hold neither "m" nor "M". Each refusal must be one line naming the judge and the problem.
The real-server path (vLLM) is tests/test_judge_server.py.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from repro.errors import ReproError
from repro.evaluation import benchmarks
from repro.evaluation.judge import identity, local
from repro.evaluation.judge.gateway import chat_response
from repro.evaluation.judge.judged_by import JudgedBy

TOP_M = [{"token": "M", "logprob": -0.4}, {"token": "m", "logprob": -1.2}]


class Scripted:
    """An OpenAI-compatible server: GET /models lists `served`; POST answers `answer(body)`."""

    def __init__(self, served: list[str] | None, answer):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, data) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):  # noqa: N802
                if served is None:
                    self._send(404, {"error": {"message": "no such route"}})
                else:
                    self._send(
                        200, {"object": "list", "data": [{"id": m, "object": "model"} for m in served]}
                    )

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                self._send(200, answer(body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def asked(model: str | None, benches: list[str]) -> dict[str, str]:
    """What the runner asks a judge for: --judge-model, or each benchmark's published judge."""
    return {b: model or benchmarks.get(b).published_judge for b in benches}


def with_logprobs(body):
    return chat_response(
        body["model"], "M", logprobs=[{"token": "M", "logprob": -0.4, "top_logprobs": TOP_M}]
    )


@pytest.fixture
def scripted():
    servers = []

    def make(served, answer):
        servers.append(Scripted(served, answer))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_a_judge_with_logprobs_is_accepted_and_asked_as_alpaca_eval_asks(scripted):
    up = scripted(["judge"], with_logprobs)
    ident = identity.probe(up.url, asked=asked("judge", ["alpaca_eval2", "mt_bench"]), key_env="NO_SUCH_KEY")
    said = {"served": {"id": "judge", "object": "model"}, "answered_as": "judge", "fingerprint": None}
    assert ident.to_json() == {
        "local": True, "served_models": ["judge"], "answered_as": "judge", "logprobs": True,
        "models": {"judge": said},  # what the server said of itself: the judge in the cache's keys
    }  # fmt: skip
    (body,) = up.bodies  # one request: the weighted annotator's own shape
    assert (body["max_tokens"], body["logprobs"], body["top_logprobs"], body["temperature"]) == (
        1,
        True,
        5,
        1,
    )
    assert (
        body["messages"][0]["role"] == "system"
        and "## Best Model Identifier" in body["messages"][-1]["content"]
    )
    # without AlpacaEval 2: the model list, and one token from the model asked for (who answers)
    ident = identity.probe(up.url, asked=asked("judge", ["arena_hard"]), key_env="NO_SUCH_KEY")
    assert len(up.bodies) == 2 and up.bodies[1]["max_tokens"] == 1 and ident.of_model("judge") == said


@pytest.mark.parametrize(
    ("served", "answer", "model", "message"),
    [
        (["judge"], lambda b: chat_response(b["model"], "M"), "judge", "answered without log-probs"),
        (None, lambda b: chat_response("other-model", "M", logprobs=[{"token": "M", "top_logprobs": TOP_M}]),
         "judge", "answered as 'other-model', not the 'judge' asked for"),
        (["tiny-judge"], with_logprobs, "judge", "does not serve 'judge' (pass --judge-model tiny-judge)"),
        (["a", "b"], with_logprobs, None, "does not serve 'gpt-4-1106-preview' (it serves a, b)"),
        (["judge"], lambda b: chat_response(b["model"], "x", logprobs=[{"token": "x", "top_logprobs": [
            {"token": "x", "logprob": -0.1}]}]), "judge", "neither 'm' nor 'M' among its top log-probs"),
        # it read "refused ...: HTTP 200"
        (["judge"], lambda b: ["not", "an object"], "judge", "with no JSON object: ['not', 'an object']"),
    ],
)  # fmt: skip
def test_a_judge_that_cannot_serve_the_weighted_annotator_is_one_line(
    scripted, served, answer, model, message
):
    up = scripted(served, answer)
    with pytest.raises(ReproError) as err:
        identity.probe(up.url, asked=asked(model, ["alpaca_eval2", "arena_hard"]), key_env="NO_SUCH_KEY")
    text = str(err.value)
    assert "\n" not in text and message in text and up.url in text


def test_an_unreachable_judge_is_one_line():
    with pytest.raises(ReproError, match="not reachable"):  # port 9 (discard): nothing listens
        identity.probe(local.url(9), asked=asked("j", ["mt_bench"]), key_env="NO_SUCH_KEY")


@pytest.mark.parametrize(
    ("judge", "metric", "note"),
    [
        ({"kind": "endpoint", "url": "https://api.openai.com/v1", "model": None}, "ae2_lc", None),
        ({"kind": "endpoint", "url": "https://api.openai.com/v1", "model": None}, "mt_bench", None),
        ({"kind": "endpoint", "url": "https://api.openai.com/v1", "model": "gpt-4-1106-preview"}, "ah", None),
        # GPT-4 Turbo is not the GPT-4 of MT-Bench's published numbers; a dated GPT-4 is
        ({"kind": "endpoint", "url": "https://x/v1", "model": "gpt-4-1106-preview"}, "mt_bench",
         "not the published gpt-4"),
        ({"kind": "endpoint", "url": "https://x/v1", "model": "gpt-4", "answered_as": "gpt-4-0613"},
         "mt_bench", None),
        ({"kind": "endpoint", "url": "http://127.0.0.1:8000/v1", "model": "qwen", "local": True}, "ae2_wr",
         "judged by qwen at a local server, not the published gpt-4-1106-preview"),
        ({"kind": "endpoint", "url": "https://api.openai.com/v1", "model": "gpt-4o"}, "ah",
         "judged by gpt-4o"),
        ({"kind": "rule", "url": None, "model": None}, "ae2_wr", "judged by the rule judge"),
        ({"kind": "rule", "url": None, "model": None}, "gsm", None),  # no judge behind GSM
    ],
)  # fmt: skip
def test_published_note_names_a_judge_other_than_the_published_one(judge, metric, note):
    judged_by = JudgedBy.from_json(judge, "here", lenient=True)
    got = judged_by.published_note(benchmarks.metric(metric)[0].published_judge)
    assert got == note if note is None else note in got


def write_result(root: Path, name: str, judge: dict, value: float) -> None:
    folder = root / "llama3-instruct-v0.2" / "simpo" / name
    folder.mkdir(parents=True)
    data = {
        "setting": "llama3-instruct-v0.2", "method": "simpo", "run_id": name, "complete": True,
        "partial": False, "scores": {"ae2_lc": value, "ae2_wr": value}, "judge": judge,
    }  # fmt: skip
    (folder / "result.json").write_text(json.dumps(data))


def test_compare_says_when_a_local_judge_sits_beside_a_published_gpt4_number(tmp_path):
    from repro.runs.analysis import compare

    local_judge = {"kind": "endpoint", "url": "http://127.0.0.1:8000/v1", "model": "qwen", "local": True}
    write_result(tmp_path, "a", local_judge, 40.0)
    write_result(tmp_path, "b", {"kind": "endpoint", "url": "https://api.openai.com/v1", "model": None}, 41.0)
    rows = {r.metric: r.as_dict() for r in compare.compare(tmp_path).rows if r.runs}
    assert rows["ae2_lc"]["runs"] == 2 and rows["ae2_lc"]["published"] is not None
    assert (
        rows["ae2_lc"]["judge_note"]
        == "judged by qwen at a local server, not the published gpt-4-1106-preview"
    )
    only_published = tmp_path / "published-judge"
    write_result(
        only_published, "c", {"kind": "endpoint", "url": "https://api.openai.com/v1", "model": None}, 41.0
    )
    assert all(r.as_dict()["judge_note"] is None for r in compare.compare(only_published).rows)


def test_judge_serve_dry_run_prints_the_server_and_the_flags(cli):
    proc = cli("judge", "serve", "org/Judge-7B", "--port", "8123", "--max-model-len", "8192", "--dry-run",
               "--", "--tensor-parallel-size", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    command, flags = proc.stdout.strip().splitlines()
    assert "vllm.entrypoints.openai.api_server --model org/Judge-7B --host 127.0.0.1 --port 8123" in command
    for part in ("--served-model-name Judge-7B", "--max-logprobs 20", "--generation-config vllm",
                 "--max-model-len 8192", "--tensor-parallel-size 2"):  # fmt: skip
        assert part in command
    assert flags == "--judge-url http://127.0.0.1:8123/v1 --judge-model Judge-7B"


@pytest.mark.parametrize(("cores", "reserved"), [(2, "0"), (3, "0"), (4, None), (64, None)])
def test_a_served_judge_on_a_small_cpu_machine_keeps_no_core_for_its_api_server(monkeypatch, cores, reserved):
    """vLLM's CPU worker keeps a core for the API server: half of a 2-core machine (judging 1.65x
    slower, perf/judge_serve_cores.py). What repro sets is what the dry run prints; the user's
    own value wins."""
    monkeypatch.setattr(local, "_cpu", lambda: True)
    monkeypatch.setattr(local.os, "cpu_count", lambda: cores)
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    assert local.added_environment().get("VLLM_CPU_NUM_OF_RESERVED_CPU") == reserved
    assert local.environment()["VLLM_CPU_KVCACHE_SPACE"] == "1"
    monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", "1")
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in local.added_environment()
    assert local.environment()["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    monkeypatch.setattr(local, "_cpu", lambda: False)  # on a GPU vLLM's defaults stand
    assert local.added_environment() == {}


def test_judge_serve_dry_run_shows_the_variables_it_sets(cli, monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    proc = cli("judge", "serve", "org/Judge-7B", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    expected = "VLLM_CPU_KVCACHE_SPACE=1 " + ("VLLM_CPU_NUM_OF_RESERVED_CPU=0 " if os.cpu_count() < 4 else "")
    assert proc.stdout.startswith(expected) and proc.stdout.split()[len(expected.split())].endswith("python")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("/no/such/checkpoint",), "/no/such/checkpoint: no such folder, and not a Hugging Face model id"),
        (("{file}",), "not a folder (MODEL"),
        (("org/Judge-7B", "--", "--model", "other"), "--model is set by repro judge serve"),
        (("org/Judge-7B", "--", "--served-model-name=x"), "--served-model-name is set by repro judge serve"),
    ],
)  # fmt: skip
def test_judge_serve_refuses_a_missing_model_or_a_flag_it_sets_before_starting(cli, tmp_path, args, message):
    """The server used to start and fail in its log ("Found duplicate keys --model"; no folder)."""
    (tmp_path / "weights.bin").write_text("x")
    args = tuple(a.replace("{file}", str(tmp_path / "weights.bin")) for a in args)
    proc = cli("judge", "serve", "--port", "8124", "--log", str(tmp_path / "serve.log"), *args)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "serve.log").exists()  # refused before anything started


def test_who_judged_is_a_typed_record_read_strictly(scripted):
    """Oracle: the layout results have always had (Judge.describe() keys, then what the server
    said), written literally here; a record written by the previous main has exactly it."""
    up = scripted(["judge"], with_logprobs)
    said = identity.probe(up.url, asked=asked("judge", ["alpaca_eval2"]), key_env="NO_SUCH_KEY")
    judged = JudgedBy("endpoint", up.url, "judge", "OPENAI_API_KEY", said)
    data = judged.to_json()
    assert list(data) == ["kind", "url", "model", "key_env", "local", "served_models", "answered_as",
                          "logprobs", "models"]  # fmt: skip
    assert JudgedBy.from_json(json.loads(json.dumps(data)), "result.json") == judged
    rule = {"kind": "rule", "url": None, "model": None, "key_env": "OPENAI_API_KEY"}
    assert JudgedBy.from_json(rule, "x").to_json() == rule and JudgedBy.from_json(rule, "x").said is None
    for bad, says in (
        ({**data, "api_key": "sk-1"}, "unknown key 'api_key'"),
        ({k: v for k, v in data.items() if k != "served_models"}, "missing key 'served_models'"),
        ({k: v for k, v in rule.items() if k != "key_env"}, "missing key 'key_env'"),
        ({**data, "models": {"judge": {"served": None}}}, "'models' is not a mapping"),
        ({**data, "local": "yes"}, "'local' and 'logprobs' are true or false"),
        ({**rule, "model": 4}, "'model' is not a name"),
        ([rule], "not a mapping"),
    ):
        with pytest.raises(ReproError, match=says) as caught:
            JudgedBy.from_json(bad, "result.json")
        assert str(caught.value).startswith("result.json: judge:") and "\n" not in str(caught.value)
    # an older or hand-made record: unknown keys left out, nothing at all is an unknown judge
    assert JudgedBy.from_json({}, "old", lenient=True) is None
    assert JudgedBy.from_json({"kind": "rule", "note": "x"}, "old", lenient=True) == JudgedBy("rule")


def test_the_report_never_prices_judging_at_nan(tmp_path):
    """alpaca-eval records price_per_example NaN for a model it has no price for (any judge you
    serve yourself); the report said "$nan". Oracle: the prices written here, summed by hand."""
    from repro.runs.analysis.report import judge_cost

    folder = tmp_path / "eval" / "alpaca_eval2"
    folder.mkdir(parents=True)
    calls = {"backend_calls": 10, "cache_hits": 1}

    def priced(*prices):
        (folder / "annotations.json").write_text(json.dumps([{"price_per_example": p} for p in prices]))

    priced(float("nan"), float("nan"))
    local = JudgedBy("endpoint", "http://127.0.0.1:8000/v1", "smollm2-judge", "OPENAI_API_KEY")
    counted = " (10 calls, 1 from the cache)"
    assert judge_cost(tmp_path, local, calls) == (
        "$0 in API fees (a judge on this machine: smollm2-judge at a local server)" + counted
    )
    remote = JudgedBy("endpoint", "https://judge.example/v1", "qwen", "OPENAI_API_KEY")
    assert (
        judge_cost(tmp_path, remote, calls)
        == "unknown (no price recorded per judgment) (10 calls, 1 from the cache)"
    )
    priced(0.01, float("nan"), "0.02", None)
    assert judge_cost(tmp_path, remote, None) == "$0.03 on AlpacaEval (recorded per judgment)"
    assert judge_cost(tmp_path, JudgedBy("rule"), None) == "$0 (local rule judge)"

"""The judge gateway and endpoint backend against a real (fault-injecting) HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from repro.errors import ReproError
from repro.evaluation.judge import client, upstream
from repro.evaluation.judge.cache import JudgmentCache
from repro.evaluation.judge.gateway import JudgeError, chat_response, serve

GOOD = chat_response("judge", "[[A>B]]")


class Upstream:
    """Answers each request with the next scripted fault (then 200), counting calls."""

    def __init__(self, script: list[str], delay: float = 0.0, default: str = "ok"):
        self.script = deque(script)
        self.default = default
        self.delay = delay
        self.calls = 0
        self.seen_auth: list[str] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                upstream.calls += 1
                upstream.seen_auth.append(self.headers.get("Authorization", ""))
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:  # a real server answers as the model it was asked for
                    asked = json.loads(raw).get("model") or "judge"
                except (ValueError, AttributeError):
                    asked = "judge"
                fault = upstream.script.popleft() if upstream.script else upstream.default
                if upstream.delay:
                    time.sleep(upstream.delay)
                if fault == "timeout":
                    time.sleep(1.5)
                    fault = "ok"
                if fault == "reset":  # close the connection without an answer
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                status, body, headers = 200, json.dumps({**GOOD, "model": asked}), {}
                if fault == "429":
                    status, body, headers = 429, '{"error": "slow down"}', {"Retry-After": "0"}
                elif fault == "500":
                    status, body = 500, '{"error": "boom"}'
                elif fault == "badjson":
                    body = "{not json"
                elif fault == "nologprobs":
                    body = json.dumps(chat_response("judge", "m"))
                elif fault == "badtokens":
                    lp = [
                        {"token": "The", "logprob": -0.1, "top_logprobs": [{"token": "The", "logprob": -0.1}]}
                    ]
                    body = json.dumps(chat_response("judge", "The", logprobs=lp))
                elif fault == "alpaca":
                    top = [{"token": "M", "logprob": -0.2}, {"token": "m", "logprob": -1.7}]
                    body = json.dumps(
                        chat_response(
                            asked, "M", logprobs=[{"token": "M", "logprob": -0.2, "top_logprobs": top}]
                        )
                    )
                elif fault == "400":
                    status, body = 400, '{"error": "bad request"}'
                data = body.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("REPRO_TEST_JUDGE_KEY", "sk-test-secret-123")
    return "REPRO_TEST_JUDGE_KEY"


def endpoint(url, key, **kw):
    return upstream.OpenAIEndpoint(url, api_key_env=key, backoff=0.01, max_backoff=0.05, timeout=1.0, **kw)


REQUEST = {
    "model": "gpt-4-1106-preview",
    "messages": [{"role": "user", "content": "judge this"}],
    "temperature": 0,
}


@pytest.mark.parametrize("fault", ["429", "500", "badjson", "timeout", "reset"])
def test_transient_faults_are_retried(fault, key):
    up = Upstream([fault, fault])
    try:
        out = endpoint(up.url, key)(REQUEST)
        assert out["choices"][0]["message"]["content"] == "[[A>B]]"
        assert up.calls == 3
        assert up.seen_auth[0] == "Bearer sk-test-secret-123"
    finally:
        up.close()


def test_missing_logprobs_are_retried_then_reported(key):
    up = Upstream(["nologprobs"] * 10)
    try:
        with pytest.raises(JudgeError, match="missing log-probs: gave up after 3 attempts"):
            endpoint(up.url, key, max_retries=2)({**REQUEST, "logprobs": True, "top_logprobs": 5})
        assert up.calls == 3
    finally:
        up.close()


def test_client_errors_are_not_retried(key):
    up = Upstream(["400"])
    try:
        with pytest.raises(JudgeError, match="HTTP 400"):
            endpoint(up.url, key)(REQUEST)
        assert up.calls == 1
    finally:
        up.close()


def test_missing_key_is_a_one_line_error(monkeypatch):
    monkeypatch.delenv("REPRO_NO_SUCH_KEY", raising=False)
    with pytest.raises(ReproError, match="set the environment variable REPRO_NO_SUCH_KEY"):
        upstream.OpenAIEndpoint("http://127.0.0.1:9/v1", api_key_env="REPRO_NO_SUCH_KEY")


def test_gateway_caches_successes_only_and_never_pays_twice(key, tmp_path):
    up = Upstream(["500", "500", "500", "500"])  # the first request fails for good (max_retries 3)
    cache = JudgmentCache(tmp_path / "judgments.sqlite")
    try:
        with serve(endpoint(up.url, key, max_retries=3), cache) as (base_url, gateway):
            chat = client.chat_function(base_url, "gpt-4-1106-preview")
            messages = REQUEST["messages"]
            with pytest.raises(Exception, match="gave up"):
                chat(messages)
            assert len(cache) == 0  # an error response never enters the cache
            assert chat(messages) == "[[A>B]]"
            calls = up.calls
            assert chat(messages) == "[[A>B]]"  # a rerun costs nothing
            assert up.calls == calls and gateway.stats.cache_hits == 1
            assert gateway.stats.failures
    finally:
        up.close()
        cache.close()
    # the key never reaches the cache file
    assert b"sk-test-secret-123" not in (tmp_path / "judgments.sqlite").read_bytes()
    reopened = JudgmentCache(tmp_path / "judgments.sqlite")
    assert len(reopened) == 1
    reopened.close()


def test_rule_judge_speaks_each_benchmark_format():
    judge = upstream.RuleJudge()
    prompt = (
        "<|User Prompt|>\nwhat is the cat ?\n\n<|The Start of Assistant A's Answer|>\nno .\n"
        "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n"
        "sure , the cat is good .\n<|The End of Assistant B's Answer|>"
    )
    ah = judge({"model": "j", "messages": [{"role": "user", "content": prompt}]})
    assert "[[B>>A]]" in ah["choices"][0]["message"]["content"]
    with pytest.raises(JudgeError, match="unrecognized"):
        judge({"model": "j", "messages": [{"role": "user", "content": "hello"}]})


def test_alpaca_eval_judge_faults_are_counted_and_a_rerun_judges_only_the_missing_rows(key, tmp_path):
    """Rows whose judgment keeps failing (unexpected tokens) are failed, not silently dropped: the
    result is incomplete; nothing failed is cached; a rerun pays only for the missing rows."""
    from repro.evaluation.scorers import alpaca_eval

    instructions = [f"what is the {s} ?" for s in ("cat", "dog", "bird", "fish", "apple", "pear")]
    model = [
        {"instruction": i, "output": "sure , here it is .", "generator": "m", "dataset": "t"}
        for i in instructions
    ]
    reference = [{"instruction": i, "output": "no .", "generator": "r", "dataset": "t"} for i in instructions]
    cache = tmp_path / "judgments.sqlite"
    faulty = Upstream(["badtokens"] * 4, default="alpaca")  # the first two rows fail twice (max_retries 1)
    try:
        first = alpaca_eval.evaluate(
            model,
            reference,
            endpoint(faulty.url, key, max_retries=1),
            name="m",
            cache_path=cache,
            concurrency=1,
        )
    finally:
        faulty.close()
    assert first["incomplete"] is True and first["n_total"] == 4 and first["n_failed"] == 2
    assert first["judge_calls"]["failures"]
    good = Upstream([], default="alpaca")
    try:
        second = alpaca_eval.evaluate(
            model, reference, endpoint(good.url, key), name="m", cache_path=cache, concurrency=1
        )
    finally:
        good.close()
    assert second["incomplete"] is False and second["n_total"] == 6
    assert good.calls == 2  # only the two rows that had failed
    assert second["judge_calls"]["cache_hits"] == 4


# -- one cache, several judging processes --------------------------------------------------------

JUDGING_PROCESS = """
import json, random, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
from repro.evaluation.judge import upstream
from repro.evaluation.judge.cache import JudgmentCache
from repro.evaluation.judge.gateway import serve

cache_path, url, seed, out = sys.argv[1:]
questions = [f"q{i}" for i in range(30)]
random.Random(int(seed)).shuffle(questions)
backend = upstream.OpenAIEndpoint(url, api_key_env="REPRO_TEST_JUDGE_KEY", timeout=30, max_concurrency=4)
cache = JudgmentCache(cache_path)
with serve(backend, cache) as (base, gateway):
    def ask(q):
        body = json.dumps({"model": "judge", "messages": [{"role": "user", "content": q}], "temperature": 0})
        request = urllib.request.Request(base + "/chat/completions", body.encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return q, json.loads(response.read())["id"]
    with ThreadPoolExecutor(4) as pool:
        answers = dict(pool.map(ask, questions))
    stats = gateway.stats.as_dict()
cache.close()
json.dump({"answers": answers, "stats": stats}, open(out, "w"))
"""


class CountingJudge:
    """A slow judge (50 ms a call) that counts the calls per question; each answer has its own id."""

    def __init__(self):
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                question = body["messages"][0]["content"]
                with judge.lock:
                    judge.calls[question] = judge.calls.get(question, 0) + 1
                time.sleep(0.05)
                data = json.dumps(chat_response("judge", f"[[A>B]] {question}")).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def test_a_new_cache_waits_for_another_process_that_holds_the_file(tmp_path):
    """Opening a cache sets its journal mode, which SQLite refuses at once ("database is locked",
    its busy timeout unused) while another connection holds the file: judging processes started
    together on a new cache failed that way (test_judging_processes_share_one_cache, seen once in
    a full suite run). Here the other connection is a held write transaction, released after
    half a second; the cache waits for it."""
    import sqlite3

    path = tmp_path / "judgments.sqlite"
    holder = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other VALUES (1)")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        cache = JudgmentCache(path)
    finally:
        release.join()
        holder.close()
    assert cache.journal_mode == "WAL" and cache.get("anything") is None
    cache.close()


def test_judging_processes_share_one_cache(key, tmp_path):
    """Four processes, each with its own gateway and four threads, judge the same 30 questions in
    different orders against one cache file. Every judgment is paid once (the judge sees each
    question once), none is lost (every process gets the one stored answer of every question),
    and SQLite's integrity check passes. Without the claims, each question was paid 2-4 times."""
    import sqlite3
    import subprocess
    import sys

    judge = CountingJudge()
    script = tmp_path / "judging.py"
    script.write_text(JUDGING_PROCESS)
    cache = tmp_path / "judgments.sqlite"
    try:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(cache),
                    judge.url,
                    str(seed),
                    str(tmp_path / f"{seed}.json"),
                ]
            )
            for seed in range(4)
        ]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    finally:
        judge.server.shutdown()
        judge.server.server_close()
    assert judge.calls == {f"q{i}": 1 for i in range(30)}  # never paid twice
    outputs = [json.loads((tmp_path / f"{seed}.json").read_text()) for seed in range(4)]
    assert sum(o["stats"]["backend_calls"] for o in outputs) == 30
    assert all(o["answers"] == outputs[0]["answers"] for o in outputs)  # one answer per question, for all
    db = sqlite3.connect(cache)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = {json.loads(r)["messages"][0]["content"]: json.loads(s)["id"]
              for r, s in db.execute("SELECT request, response FROM judgments")}  # fmt: skip
    assert stored == outputs[0]["answers"]
    assert db.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)


def test_a_dead_or_stale_claim_blocks_nobody(tmp_path):
    """A claim whose process died is taken over at once; another machine's claim only once stale."""
    import subprocess
    import sys

    path = tmp_path / "judgments.sqlite"
    code = f"from repro.evaluation.judge.cache import JudgmentCache as C; assert C({str(path)!r}).claim('k')"
    subprocess.run([sys.executable, "-c", code], check=True)  # claims, then dies holding it
    cache = JudgmentCache(path)
    assert cache.claim("k") is not None  # the holder's pid is gone
    assert cache.claim("k") is None  # now held by this live process
    cache._db.execute("INSERT INTO claims VALUES ('far', 'x', 'another-node', 1, ?)", (time.time(),))
    assert cache.claim("far") is None
    cache._db.execute("UPDATE claims SET since = ? WHERE key = 'far'", (time.time() - cache.stale_after - 1,))
    assert cache.claim("far") is not None
    cache.close()

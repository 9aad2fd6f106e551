"""A hub model or dataset named by a moving revision (`main`) is the commit it resolved to: the
run's identity holds that commit, and training loads it.

Before this, a hub repository that moved upstream under `model_revision: main` kept the run's id,
so `repro run` reused a run trained on the old weights and reported it as this one; and training
never passed `model_revision` to the model loader, so a pinned revision still trained on `main`.

Oracles: huggingface_hub's own cache layout (refs/REVISION holds a commit, snapshots/COMMIT/ its
files), written here as huggingface_hub writes it and read by transformers itself; and, online,
a real HTTP server on 127.0.0.1 answering the hub's repo-info API, which the real HfApi client
reaches through HF_ENDPOINT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

MODEL, DATASET = "meta-llama/Meta-Llama-3-8B-Instruct", "princeton-nlp/llama3-ultrafeedback-armorm"
A, B, C, D = ("a" * 40), ("b" * 40), ("c" * 40), ("d" * 40)


def pin(cache: Path, kind: str, repo: str, commit: str | None, revision: str = "main") -> None:
    """What huggingface_hub leaves in its cache after a download of `revision` at `commit`."""
    ref = cache / f"{kind}s--{repo.replace('/', '--')}" / "refs" / revision
    if commit is None:
        ref.unlink(missing_ok=True)
        return
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)


def show(cli, *args: str) -> dict:
    proc = cli("show", "llama3-instruct-v0.2", "--format", "json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_hub_model_that_moves_under_main_is_another_run(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))

    uncached = show(cli)  # nothing cached: nothing to pin, and the identity of older runs
    assert "model_commit" not in uncached and "dataset_commit" not in uncached

    pin(tmp_path, "model", MODEL, A)
    pin(tmp_path, "dataset", DATASET, B)
    first = show(cli)
    assert (first["model_commit"], first["dataset_commit"]) == (A, B)
    assert first["config_hash"] != uncached["config_hash"]

    pin(tmp_path, "model", MODEL, C)  # upstream moved, and the cache followed it
    moved = show(cli)
    assert moved["model_commit"] == C
    assert moved["config_hash"] not in (first["config_hash"], uncached["config_hash"])
    assert "model_commit" not in moved["recipe_differences"]  # what `main` was: no recipe change

    pinned = show(cli, "--set", f"model_revision={D}")  # a commit is its own pin: no lookup,
    assert pinned["model_revision"] == D and "model_commit" not in pinned  # and the id it had


class HubAPI(BaseHTTPRequestHandler):
    """GET /api/{models,datasets}/ORG/NAME/revision/REV, as the hub answers it: the repo's id and
    the commit REV is at; 404 for a repository it does not hold."""

    commits = {("models", MODEL, "main"): A, ("datasets", DATASET, "main"): B}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = self.path.split("?")[0].strip("/").split("/")
        key = (parts[1], "/".join(parts[2:4]), parts[5]) if len(parts) == 6 and parts[0] == "api" else None
        sha = self.commits.get(key) if key else None
        body = json.dumps({"id": key[1], "sha": sha} if sha else {"error": "Repository not found"})
        self.send_response(200 if sha else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hub_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_online_the_hub_says_which_commit_and_a_failure_is_one_line(cli, hub_server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", hub_server)
    config = show(cli)
    assert (config["model_commit"], config["dataset_commit"]) == (A, B)

    proc = cli("show", "llama3-instruct-v0.2", "--set", "model_name_or_path=nobody/nothing")
    assert proc.returncode != 0
    [line] = proc.stderr.strip().splitlines()
    assert "cannot resolve model nobody/nothing at 'main' on the Hugging Face Hub" in line
    assert "Traceback" not in proc.stderr


def test_an_unreachable_hub_asked_for_a_tokenizer_revision_is_one_line(cli, tmp_path, monkeypatch):
    """The pre-update Llama 3 tokenizer is "the commit before 339ce92d": the hub is asked for the
    history. With the hub unreachable its client retried 5 times and logged each try and request:
    20 lines over 15 s before the one that said what failed."""
    import socket

    with socket.socket() as s:  # a port nothing listens on: every request is refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"chosen": [], "rejected": []}) + "\n")
    proc = cli("data", "preview", "llama3-instruct-v0.2", "--input", str(rows), timeout=300)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"cannot list the commits of {MODEL}: ConnectError" in proc.stderr


LOAD = """
import sys, torch
from repro.config.resolution import resolve_names
from repro.config.runconfig import RunFile, RunPaths
from repro.train.worker import load_model

config, _ = resolve_names("tiny", "simpo", overrides=["model_name_or_path=org/tiny"])
commits = [config.model_commit]  # what the cache's refs/main says
paths = RunPaths(output_dir="x", deepspeed_config="x", model="org/tiny", tokenizer="org/tiny",
                 data_dir="x", cache_dir="x", reference_cache=None)
for commit in commits + [sys.argv[1]]:
    model = load_model(RunFile(config.replace(model_commit=commit), paths))
    print(commit, float(model.lm_head.weight.sum()))
"""


def test_training_loads_the_commit_the_identity_holds(tmp_path):
    """Two commits of one hub model in the cache, refs/main at the second: the resolved config
    names the second, and the training loader loads whichever commit the config holds."""
    from repro import tiny
    from repro.data import tokenizers

    tok = tokenizers.build_tiny()
    sums = {}
    for commit, seed in ((A, 0), (B, 1)):
        folder = tmp_path / "models--org--tiny" / "snapshots" / commit
        model = tiny.build_model(len(tok), seed=seed)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        sums[commit] = float(model.lm_head.weight.detach().sum())
    assert sums[A] != sums[B]
    pin(tmp_path, "model", "org/tiny", B)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD, A], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = dict(line.split() for line in proc.stdout.splitlines())
    assert list(loaded) == [B, A]  # resolved to refs/main's commit; then the one the config names
    for commit, total in loaded.items():
        assert float(total) == pytest.approx(sums[commit], rel=1e-6)


def test_the_starting_model_baseline_is_the_commit_the_run_trained_from(tmp_path, monkeypatch):
    """A setting judged against its starting model (`baseline: init-model`) generates the
    baseline's answers from the model the run started from: for a hub model, that commit's folder
    in the cache, not whatever refs/main says now (before: the hub name, so `main`)."""
    from huggingface_hub import constants

    from repro.config.resolution import resolve_names
    from repro.config.runconfig import RunFile, RunPaths
    from repro.errors import ReproError
    from repro.runs.pipeline import training

    for commit in (A, B):
        folder = tmp_path / "models--org--tiny" / "snapshots" / commit
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    pin(tmp_path, "model", "org/tiny", B)  # upstream moved after the run started from A
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))

    config, _ = resolve_names("tiny", "simpo", overrides=["model_name_or_path=org/tiny"], pin=False)
    paths = RunPaths(output_dir="x", deepspeed_config="x", model="org/tiny", tokenizer="org/tiny",
                     data_dir="x", cache_dir="x", reference_cache=None)  # fmt: skip
    train = tmp_path / "train"
    train.mkdir()
    for commit in (A, C):
        run = RunFile(config.replace(model_commit=commit), paths)
        (train / "run.json").write_text(json.dumps(run.to_json()))
        if commit == A:
            assert training.starting_model(train) == str(tmp_path / "models--org--tiny" / "snapshots" / A)
        else:  # a commit the cache does not hold: one line, not main's weights
            with pytest.raises(ReproError, match=f"org/tiny at '{C}' is not in the Hugging Face cache"):
                training.starting_model(train)


class HubFiles(BaseHTTPRequestHandler):
    """The part of the hub a download reads, for one repository at one commit: the file listing
    (GET /api/models/REPO/tree/REV) and each file (HEAD and GET /REPO/resolve/REV/PATH, with the
    commit and ETag headers huggingface_hub reads). `files`: path -> bytes."""

    repo, commit, files = "org/tiny", A, {}

    def _file(self) -> bytes | None:
        prefix = f"/{self.repo}/resolve/{self.commit}/"
        path = self.path.split("?")[0]
        return self.files.get(path[len(prefix) :]) if path.startswith(prefix) else None

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, head: bool = False) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # noqa: N802 - http.server's name
        import hashlib

        if self.path.split("?")[0] == f"/api/models/{self.repo}/tree/{self.commit}":
            listing = [
                {"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                for p, b in sorted(self.files.items())
            ]
            return self._send(200, json.dumps(listing).encode(), {"Content-Type": "application/json"})
        body = self._file()
        if body is None:
            missing = {"X-Error-Code": "EntryNotFound"}
            return self._send(404, b'{"error": "Entry not found"}', missing, head=head)
        etag = f'"{hashlib.sha1(body).hexdigest()}"'
        self._send(200, body, {"X-Repo-Commit": self.commit, "ETag": etag}, head=head)

    def log_message(self, *args) -> None:
        pass


SNAPSHOT = """
import sys
from repro import hub
from repro.errors import ReproError
try:
    print(hub.snapshot("org/tiny", sys.argv[1]))
except ReproError as exc:
    sys.exit(str(exc))
"""


def test_online_a_commit_is_downloaded_with_one_weight_format(tmp_path):
    """Online, `hub.snapshot` lists the repository at the commit and downloads what a loader reads
    with one weight format (safetensors where there are any, as transformers and vLLM prefer: a
    repository with both would otherwise be fetched twice). Oracle: a real HTTP server on
    127.0.0.1 answering huggingface_hub's own client (listing, HEAD and GET of each file), and
    the weights' hash of the folder the files came from."""
    from repro import hashing, tiny

    source = tiny.save_policy(tmp_path / "source")
    files = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}
    files["pytorch_model.bin"] = b"the same weights in another format"
    handler = type("Repo", (HubFiles,), {"files": files})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path / "cache"),
           "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1"}  # fmt: skip
    try:
        proc = subprocess.run(
            [sys.executable, "-c", SNAPSHOT, A], env=env, capture_output=True, text=True, timeout=300
        )
        missing = subprocess.run(
            [sys.executable, "-c", SNAPSHOT, B], env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = Path(proc.stdout.strip())
    assert folder == tmp_path / "cache" / "models--org--tiny" / "snapshots" / A
    assert "model.safetensors" in {p.name for p in folder.iterdir()}
    assert not (folder / "pytorch_model.bin").exists()
    assert hashing.weights_sha256(folder) == hashing.weights_sha256(source)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1, missing.stderr
    assert f"cannot get model org/tiny at '{B}' from the Hugging Face Hub" in missing.stderr


@pytest.mark.e2e
def test_a_released_checkpoint_is_evaluated_at_a_commit_and_says_which(cli, tmp_path, monkeypatch):
    """`repro eval ORG/NAME` loads the commit `main` is at and records it (`model_commit`); the
    same output evaluated again after the repository moved generates the new commit's answers,
    and a hub `--reference-model` likewise (here the same repository: model and baseline agree),
    recorded as `baseline_model` and `baseline_commit` where a benchmark scored against it;
    `--revision` evaluates an earlier commit (a local folder has none to choose: one line).
    Before, a hub model's answers were keyed by its name: the second evaluation took the first
    commit's answers for the new one's, and neither result said which commit it scored."""
    from repro import tiny

    for commit, seed in ((A, 0), (B, 7)):
        tiny.save_policy(tmp_path / "hub" / "models--org--tiny" / "snapshots" / commit, seed=seed)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    args = ["eval", "org/tiny", "--setting", "tiny", "--bench", "alpaca_eval2", "--limit", "4",
            "--judge", "rule", "--reference-model", "org/tiny", "--judge-cache",
            str(tmp_path / "judgments.sqlite"), "--output", str(out), "--format", "json"]  # fmt: skip

    answers = {}
    for commit in (A, B):
        pin(tmp_path / "hub", "model", "org/tiny", commit)
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads((out / "result.json").read_text())
        assert (result["model"], result["model_commit"]) == ("org/tiny", commit)
        assert (result["baseline_model"], result["baseline_commit"]) == ("org/tiny", commit)
        outputs = json.loads((out / "alpaca_eval2" / "model_outputs.json").read_text())
        assert {o["generator"] for o in outputs} == {"tiny"}  # the model's name, not its folder's
        baseline = json.loads((out / "alpaca_eval2" / "reference_outputs.json").read_text())
        answers[commit] = [o["output"] for o in outputs], [o["output"] for o in baseline]
        assert answers[commit][0] == answers[commit][1]  # the baseline is the same commit's model
    assert answers[A] != answers[B]  # the second commit's own answers, and its own baseline's

    # --revision: an earlier commit after main moved on, evaluated again at that commit
    proc = cli(*args, "--revision", A)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "result.json").read_text())["model_commit"] == A
    outputs = json.loads((out / "alpaca_eval2" / "model_outputs.json").read_text())
    assert [o["output"] for o in outputs] == answers[A][0]
    for model, revision, said in (
        (str(tmp_path / "hub" / "models--org--tiny" / "snapshots" / A), "v1", "is no hub model id"),
        ("org/tiny", "c" * 40, "is not in the Hugging Face cache"),
    ):
        bad = {"org/tiny": model, str(out): str(tmp_path / "bad")}
        proc = cli(*[bad.get(a, a) for a in args], "--revision", revision)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and said in proc.stderr, proc.stderr

    # MT-Bench grades each answer alone: no baseline answered, none recorded
    mt = tmp_path / "mt"
    proc = cli(*[{"alpaca_eval2": "mt_bench", str(out): str(mt)}.get(a, a) for a in args])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((mt / "result.json").read_text())
    assert "baseline_model" not in result and "baseline_commit" not in result


def test_an_offline_run_whose_hub_dataset_is_not_cached_stops_at_preflight(cli, tmp_path, monkeypatch):
    """Offline (HF_HUB_OFFLINE=1), a hub model the cache lacks failed preflight, but a hub dataset
    the cache lacks passed it ("a hub id is the hub's to answer"): the run was identified without
    the dataset's commit and failed in the training processes, after spawning them and loading the
    model. Now preflight names it, and passes once the hub cache holds the pinned commit, or the
    datasets library's own cache holds a copy. Oracle: huggingface_hub's and datasets' cache
    layouts (refs/main + snapshots/COMMIT; HF_DATASETS_CACHE/ORG___NAME)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    pin(tmp_path / "hub", "model", MODEL, A)
    (tmp_path / "hub" / f"models--{MODEL.replace('/', '--')}" / "snapshots" / A).mkdir(parents=True)
    (tmp_path / "hub" / f"models--{MODEL.replace('/', '--')}" / "snapshots" / A / "config.json").write_text(
        "{}"
    )

    def dataset_check() -> str:
        args = ("run", "llama3-instruct-v0.2", "--method", "simpo", "--dry-run", "--format", "json")
        proc = cli(*args, "--results", str(tmp_path / "results"))
        assert proc.returncode == 0, proc.stderr
        plan = json.loads(proc.stdout)
        assert plan["preflight"]["model"].startswith("ok: "), plan["preflight"]
        return plan["preflight"]["dataset"]

    missing = dataset_check()
    assert missing.startswith(f"FAILS: {DATASET} is not in the Hugging Face cache and the Hub is offline")
    assert f"huggingface-cli download --repo-type dataset {DATASET}" in missing
    pin(tmp_path / "hub", "dataset", DATASET, B)  # a ref without the commit's files: still missing
    assert dataset_check().startswith("FAILS: ")
    (tmp_path / "hub" / f"datasets--{DATASET.replace('/', '--')}" / "snapshots" / B).mkdir(parents=True)
    assert dataset_check() == f"ok: {DATASET}"
    pin(tmp_path / "hub", "dataset", DATASET, None)
    (tmp_path / "datasets" / DATASET.replace("/", "___")).mkdir(parents=True)  # prepared by datasets
    assert dataset_check() == f"ok: {DATASET}"

    (tmp_path / "datasets" / DATASET.replace("/", "___")).rmdir()
    run = cli("run", "llama3-instruct-v0.2", "--method", "simpo", "--results", str(tmp_path / "r2"))
    assert run.returncode == 1 and run.stderr.strip().count("\n") == 0, run.stderr
    assert run.stderr.startswith(
        f"repro: error: preflight: dataset: {DATASET} is not in the Hugging Face cache"
    )
    assert not (tmp_path / "r2").exists() or not any((tmp_path / "r2").rglob("run.json"))  # nothing launched

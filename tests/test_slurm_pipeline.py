"""`repro run/sweep --launcher slurm` without a cluster: the scripts, the submission order and
dependencies (through a stand-in `sbatch` that records its arguments), bad input, and
`repro status` on a folder of runs in every state. The real cluster runs the same pipeline
end to end in tests/test_slurm.py."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from repro import io
from repro.config.resolution import resolve_names
from repro.errors import ReproError
from repro.runs.cluster import status
from tests.test_trust import write_run_file

PAPER = ("sweep", "llama3-instruct-v0.2", "--method", "simpo", "--grid", "paper", "--launcher", "slurm")
TINY = ("sweep", "tiny", "--method", "simpo", "--lr", "5e-4,1e-3", "--gpus", "1", "--judge", "rule",
        "--launcher", "slurm", "--device", "cpu")  # fmt: skip


@pytest.fixture
def shared_results():
    """A results folder outside /tmp (repro refuses node-local folders for SLURM runs), one per
    test: tests running side by side (pytest -n 2) never share or delete each other's."""
    parent = Path.home() / ".cache"
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="repro-test-slurm-pipeline-", dir=parent))
    yield folder / "results"
    shutil.rmtree(folder, ignore_errors=True)


def fake_tool(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("#!/bin/sh\n" + body)
    (folder / name).chmod(0o755)


def one_line_error(proc, needle: str, code: int = 1) -> None:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr


@pytest.mark.e2e
def test_paper_grid_dry_run_prints_every_job_and_writes_nothing(cli, tmp_path):
    """The issue's command: 48 array elements, generation and judging after them, the estimate."""
    results = tmp_path / "results"
    proc = cli(*PAPER, "--dry-run", "--results", str(results))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("#SBATCH --array=0-47\n") == 2  # training and generation
    for name in ("train.sbatch", "generate.sbatch", "judge.sbatch"):
        assert f"{name} (not written)" in out
    assert "after train succeeds (--dependency=afterok)" in out
    assert "after generate succeeds (--dependency=afterok)" in out
    assert "#SBATCH --signal=B:USR1@300" in out and "#SBATCH --requeue" in out
    assert "48 runs" in out and "GPU-hours" in out and "judge calls, about $2,885" in out
    assert "nothing written, nothing submitted" in out
    assert not results.exists()

    data = json.loads(
        cli(*PAPER, "--dry-run", "--results", str(results), "--format", "json", check=True).stdout
    )
    assert len(data["runs"]) == 48 and data["estimate"]["judge_calls"] == 48 * 1965
    assert len({r["run_dir"] for r in data["runs"]}) == 48
    assert (
        "--gpus-per-node=" in data["scripts"]["train"] and "--gpus-per-node=1" in data["scripts"]["generate"]
    )
    assert "gpus" not in data["scripts"]["judge"]  # judging needs no GPU
    assert not results.exists()


SITE_LINES = ("--partition=h100", "--account=lab", "--time=2-00:00:00", "--qos=high", "--constraint=h100&ib",
              "--mail-type=FAIL", "--exclusive", "--signal=B:USR1@600")  # fmt: skip


@pytest.mark.e2e
def test_site_options_reach_every_job(cli, tmp_path):
    extra = tmp_path / "extra.sbatch"
    extra.write_text("# site lines\n#SBATCH --mail-type=FAIL\n\n#SBATCH --exclusive\n")
    data = json.loads(
        cli(
            *PAPER, "--dry-run", "--format", "json", "--results", str(tmp_path / "r"), "--max-parallel", "8",
            "--partition", "h100", "--account", "lab", "--time", "2-00:00:00", "--qos", "high",
            "--constraint", "h100&ib", "--sbatch-extra", str(extra), "--signal-seconds", "600", check=True,
        ).stdout
    )  # fmt: skip
    for name, script in data["scripts"].items():
        for line in SITE_LINES:
            assert f"#SBATCH {line}\n" in script, (name, line)
    assert "#SBATCH --array=0-47%8\n" in data["scripts"]["train"]
    gpus = int(data["scripts"]["train"].split("--gpus-per-node=")[1].split("\n")[0])
    assert data["estimate"]["gpu_hours_reserved"] == 48 * 48 * gpus  # runs x --time x GPUs, an upper bound

    # --time 0 is SLURM's "no limit": no bound, said as such (it read "CPU nodes")
    text = cli(*PAPER, "--dry-run", "--results", str(tmp_path / "r"), "--time", "0", check=True).stdout
    assert "GPU nodes without a time limit (--time 0)" in text and "CPU nodes" not in text


@pytest.mark.e2e
def test_submission_order_and_dependencies(cli, tmp_path, shared_results, monkeypatch):
    """A stand-in sbatch records each call and answers with a job id: training first, then
    generation after it, then judging after generation, and the ids land in submitted.json."""
    bin_dir, record = tmp_path / "bin", tmp_path / "sbatch.calls"
    fake_tool(bin_dir, "sbatch", f'echo "$@" >> {record}\nn=$(wc -l < {record})\necho "$((100 + n))"\n')
    for tool in ("squeue", "sacct", "scontrol"):  # a scheduler that knows nothing (yet)
        fake_tool(bin_dir, tool, "exit 0\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    proc = cli(*TINY, "--submit", "--max-parallel", "1", "--results", str(shared_results), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    calls = record.read_text().splitlines()
    assert len(calls) == 3
    assert "--dependency" not in calls[0] and calls[0].endswith("train.sbatch")
    assert "--dependency=afterok:101" in calls[1] and calls[1].endswith("generate.sbatch")
    assert "--dependency=afterok:102" in calls[2] and calls[2].endswith("judge.sbatch")
    assert all("--kill-on-invalid-dep=yes" in c for c in calls)
    info = json.loads(proc.stdout)
    assert info["jobs"] == {"train": "101", "generate": "102", "judge": "103"}
    folder = Path(info["folder"])
    assert io.read_json(folder / "submitted.json")["jobs"] == info["jobs"]
    train = (folder / "train.sbatch").read_text()
    assert "#SBATCH --array=0-1%1" in train and "--gpus-per-node" not in train
    for run in info["runs"]:  # every training folder is prepared before submission
        assert (Path(run["run_dir"]) / "train" / "run.json").exists()
    status = json.loads(cli("status", str(shared_results), "--format", "json", check=True).stdout)
    assert sorted((r["kind"], r["job"]) for r in status["runs"]) == [
        ("not started", "101_0"),
        ("not started", "101_1"),
    ]


@pytest.mark.e2e
def test_bad_input_is_one_line_and_submits_nothing(cli, tmp_path, shared_results, monkeypatch):
    # no sbatch on the PATH
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    one_line_error(cli(*TINY, "--submit", "--results", str(shared_results)), "no 'sbatch' on the PATH")
    assert not shared_results.exists()
    # a partition sbatch does not know: its own error, in one line, nothing submitted
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "sbatch", 'echo "sbatch: error: invalid partition specified: nope" >&2\nexit 1\n')
    fake_tool(bin_dir, "scancel", f"echo scancel >> {tmp_path / 'scancel.calls'}\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    proc = cli(*TINY, "--submit", "--partition", "nope", "--results", str(shared_results))
    one_line_error(proc, "sbatch refused the train job: sbatch: error: invalid partition specified: nope")
    assert "nothing was submitted" in proc.stderr and not (tmp_path / "scancel.calls").exists()
    assert not list(shared_results.rglob("submitted.json"))
    # a tracker that cannot log (W&B without credentials): the login node's preflight says so
    # before any script or run folder is written, not the training job hours later
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    run_wandb = ("run", "tiny", "--launcher", "slurm", "--device", "cpu", "--judge", "rule",
                 "--report-to", "wandb")  # fmt: skip
    fresh = shared_results.with_name("results-wandb")  # the refused partition above left its scripts
    one_line_error(cli(*run_wandb, "--results", str(fresh)), "report_to wandb: no W&B credentials")
    assert not fresh.exists()
    # a results folder the compute nodes cannot see
    one_line_error(cli(*TINY, "--results", str(tmp_path / "results")), "under /tmp")
    assert not (tmp_path / "results").exists()
    # --max-parallel 0
    one_line_error(cli(*TINY, "--dry-run", "--max-parallel", "0"), "--max-parallel must be at least 1", 2)
    # two grid points that are one run
    proc = cli("sweep", "tiny", "--lr", "1e-3,0.001", "--launcher", "slurm", "--dry-run", "--judge", "rule")
    one_line_error(proc, "would overwrite each other", 2)
    # a time limit SLURM would refuse; --submit without the SLURM launcher
    one_line_error(cli(*TINY, "--dry-run", "--time", "soon"), "--time 'soon'", 2)
    one_line_error(cli("run", "tiny", "--submit"), "--submit goes with --launcher slurm", 2)
    # minutes past 59; a warning signal no earlier than the start; a path sbatch's lines cannot hold
    one_line_error(cli(*TINY, "--dry-run", "--time", "25:99:00"), "minutes and seconds run to 59", 2)
    proc = cli(*TINY, "--dry-run", "--time", "1:00:00", "--signal-seconds", "3600")
    one_line_error(proc, "--signal-seconds 3600 is not shorter than --time 1:00:00", 2)
    spaced = shared_results.with_name("results with spaces")
    one_line_error(cli(*TINY, "--dry-run", "--results", str(spaced)), "path holds spaces", 2)


@pytest.mark.e2e
def test_run_with_the_slurm_launcher_is_a_one_point_pipeline(cli, tmp_path):
    data = json.loads(
        cli(
            "run",
            "tiny",
            "--launcher",
            "slurm",
            "--dry-run",
            "--format",
            "json",
            "--device",
            "cpu",
            "--results",
            str(tmp_path / "r"),
            check=True,
        ).stdout  # fmt: skip
    )
    assert len(data["runs"]) == 1 and "#SBATCH --array=0-0\n" in data["scripts"]["train"]
    assert data["estimate"]["judge_cost_usd"] == 0  # the tiny setting's rule judge
    login = json.loads(
        cli(
            "run",
            "tiny",
            "--launcher",
            "slurm",
            "--dry-run",
            "--format",
            "json",
            "--judge-on",
            "login",
            "--results",
            str(tmp_path / "r"),
            check=True,
        ).stdout  # fmt: skip
    )
    assert set(login["scripts"]) == {"train", "generate"}
    assert "on the login node" in login["order"][-1]
    assert "repro.runs.cluster.stage judge" in login["order"][-1]


PLUGIN = """from repro.evaluation.benchmarks import Benchmark, Metric, register


@register
class Capitals(Benchmark):
    name = "capitals"
    title = "Capitals"
    metrics = (Metric("capitals_em", "Capitals EM"),)

    def run(self, model, output, ctx):
        return {}

    def scores(self, outputs):
        return {"capitals_em": None}
"""


def test_the_jobs_load_a_bench_path_plugin_from_the_plan(cli, tmp_path, shared_results):
    """A --bench-path benchmark reaches the stage jobs through plan.json (file and sha256), not
    through the environment sbatch may or may not export; a plugin changed or gone since the
    pipeline was written stops the job with one line (its answers would not be the run's)."""
    import os
    import subprocess
    import sys

    plugin = tmp_path / "mine" / "capitals.py"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN)
    proc = cli(*TINY, "--bench", "gsm,capitals", "--bench-path", str(plugin),
               "--results", str(shared_results), "--format", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plan_file = Path(json.loads(proc.stdout)["folder"]) / "plan.json"
    plan = io.read_json(plan_file)
    sha = __import__("hashlib").sha256(plugin.read_bytes()).hexdigest()
    assert plan["plugins"] == {"capitals": {"path": str(plugin.resolve()), "sha256": sha}}

    env = {k: v for k, v in os.environ.items() if k != "REPRO_BENCH_PATH"}  # an --export=NONE job
    load = "import sys; from pathlib import Path; from repro.runs.cluster import stage; "
    load += "stage.load(Path(sys.argv[1]))"
    names = f"{load}; from repro.evaluation import benchmarks; print(' '.join(benchmarks.names()))"
    out = subprocess.run([sys.executable, "-c", names, str(plan_file)], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.split()[-1] == "capitals"

    def judge_job() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "repro.runs.cluster.stage", "judge", str(plan_file)],
                              env=env, capture_output=True, text=True)  # fmt: skip

    plugin.write_text(PLUGIN.replace('"Capitals EM"', '"Capital cities EM"'))
    job = judge_job()
    assert job.returncode == 1 and job.stdout.count("\n") == 1, (job.stdout, job.stderr)
    assert "changed since the pipeline was written" in job.stdout and str(plugin.resolve()) in job.stdout
    plugin.unlink()
    job = judge_job()
    assert job.returncode == 1 and job.stdout.count("\n") == 1, (job.stdout, job.stderr)
    assert "which is gone" in job.stdout


# -- repro status ---------------------------------------------------------------------------------


def _run_folder(results: Path, lr: float, **files: object) -> Path:
    config, _ = resolve_names("tiny", "simpo", overrides=[f"learning_rate={lr:g}"])
    root = results / "tiny" / "simpo" / config.run_id
    (root / "train").mkdir(parents=True)
    write_run_file(root / "train", config)
    for name, content in files.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            io.write_json(path, content)
    return root


def test_status_shows_every_state(cli, tmp_path, monkeypatch):
    """A folder with runs in every state, four of them from a submitted pipeline whose jobs a
    stand-in squeue reports (one pending, one failed with its log's reason)."""
    results = tmp_path / "results"
    steps = "".join(f"REPRO_STEP {i}/32\n" for i in range(1, 13))
    record = {
        "setting": "tiny", "method": "simpo", "scores": {"ae2_lc": 61.5, "ae2_wr": 60.0},
        "judge": {"kind": "rule"}, "benchmarks": {},
    }  # fmt: skip
    done = _run_folder(results, 1e-4, **{"result.json": record})
    training = _run_folder(results, 2e-4, **{"train__train.log": steps})
    preempted = _run_folder(
        results, 3e-4, **{"train__train.log": steps, "train__preempted.json": {"step": 12}}
    )
    oom = _run_folder(results, 4e-4, **{"train__train.log": steps + "repro: error: CUDA out of memory\n"})
    generating = _run_folder(results, 5e-4, **{"stage.json": {"stage": "generating", "done": 2, "total": 5}})
    judging = _run_folder(results, 6e-4, **{"stage.json": {"stage": "judging"}})
    no_key = _run_folder(
        results, 7e-4, **{"stage.json": {"stage": "failed", "reason": "OPENAI_API_KEY is not set"}}
    )
    trained = _run_folder(
        results, 8e-4, **{"train__metrics.json": {"steps": 32}, "train__model__config.json": {}}
    )
    queued = _run_folder(results, 9e-4)
    killed = _run_folder(results, 1e-3, **{"train__train.log": "REPRO_STEP 3/32\n"})
    pipeline = results / "slurm" / "tiny-simpo-0123456789"
    (pipeline / "logs").mkdir(parents=True)
    (pipeline / "logs" / "train-500_1.log").write_text(
        "repro: error: training failed (exit 137): node lost\n"
    )
    runs = [queued, killed, training, preempted]
    entries = [{"root": str(r), "directory": str(r), "index": i, "values": {}} for i, r in enumerate(runs)]
    jobs = {"train": "500", "generate": "501", "judge": "502"}
    io.write_json(pipeline / "submitted.json", {"jobs": jobs, "runs": entries})
    bin_dir = tmp_path / "bin"
    fake_tool(
        bin_dir,
        "squeue",
        'printf "500_0|PENDING|Priority\\n500_2|RUNNING|None\\n500_3|PENDING|BeginTime\\n"\n',
    )
    fake_tool(bin_dir, "sacct", 'printf "500_1|FAILED\\n"\n')
    fake_tool(bin_dir, "scontrol", "exit 0\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    by_dir = {Path(r.run_dir): r.as_dict() for r in status.collect(results)}
    assert len(by_dir) == 10

    def shown(root):
        return by_dir[root]["kind"], by_dir[root]["stage"]

    assert shown(done) == ("done", "done") and by_dir[done]["scores"] == {"ae2_lc": 61.5, "ae2_wr": 60.0}
    assert by_dir[done]["judge_cost_usd"] == 0.0
    assert shown(training) == ("training", "training step 12 of 32")
    assert by_dir[training]["job"] == "500_2" and by_dir[training]["job_state"] == "RUNNING"
    assert shown(preempted) == ("preempted", "preempted at step 12: checkpoint saved, requeued")
    assert by_dir[preempted]["job_state"] == "PENDING"
    assert shown(oom) == ("failed", "failed: CUDA out of memory")
    assert shown(generating) == ("generating", "generating (benchmark 2 of 5)")
    assert shown(judging) == ("judging", "judging")
    assert shown(no_key) == ("failed", "failed: OPENAI_API_KEY is not set")
    assert shown(trained) == ("trained", "trained, waiting to generate")
    assert shown(queued) == ("queued", "queued (Priority)") and by_dir[queued]["job"] == "500_0"
    assert shown(killed) == ("failed", "failed: training failed (exit 137): node lost")
    assert by_dir[done]["point"] == {"learning_rate": 1e-4, "beta": 2.0, "gamma_beta_ratio": 0.5}

    table = cli("status", str(results), check=True).stdout
    assert "training step 12 of 32" in table and "500_0" in table and "1 done" in table


# -- the job scripts' requeue logic, with stand-ins for srun and scontrol ---------------------------


def test_the_evaluation_jobs_use_the_options_the_pipeline_was_given(
    cli, tmp_path, shared_results, monkeypatch
):
    """`repro run --launcher slurm --zeroeval-data DIR`: the plan carries the EvalOptions whole
    (strict JSON), and the generation and judging jobs evaluate with that DIR. Before, the stage
    jobs built `EvalOptions(backend, limit)` and the folder was silently dropped."""
    from repro.evaluation.eval_options import EvalOptions
    from repro.runs.cluster import stage

    data = tmp_path / "zeroeval"
    data.mkdir()
    proc = cli("run", "tiny", "--method", "simpo", "--gpus", "1", "--judge", "rule", "--launcher", "slurm",
               "--device", "cpu", "--bench", "gsm", "--zeroeval-data", str(data), "--limit", "3",
               "--results", str(shared_results), "--format", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plan_file = Path(json.loads(proc.stdout)["folder"]) / "plan.json"
    recorded = io.read_json(plan_file)["options"]
    assert recorded["zeroeval_data"] == str(data) and recorded["limit"] == 3
    typo = tmp_path / "typo" / "plan.json"
    typo.parent.mkdir()
    io.write_json(typo, {**io.read_json(plan_file), "options": {**recorded, "zeroeval_dir": str(data)}})
    with pytest.raises(ReproError, match="zeroeval_dir"):  # a data option no benchmark declares
        stage.eval_options(io.read_json(typo), typo)

    seen: dict[str, EvalOptions] = {}

    def generate(config, *, options, **_):
        seen["generate"] = options
        return {}

    def execute(config, *, options, **_):
        seen["judge"] = options
        return SimpleNamespace(run_dir="run")

    monkeypatch.setattr(stage.run, "generate", generate)
    monkeypatch.setattr(stage.run, "execute", execute)
    stage.generate(plan_file, 0)
    stage.judge(plan_file)
    assert seen["generate"] == EvalOptions(limit=3, data_paths={"zeroeval_data": data})
    assert seen["judge"] == EvalOptions(limit=3, data_paths={"zeroeval_data": data}, stage="judge")


def test_a_plan_resolves_relative_data_folders(tmp_path, monkeypatch):
    """A SLURM job runs in the pipeline's folder: a relative --zeroeval-data is made absolute."""
    from repro.evaluation.eval_options import EvalOptions
    from repro.evaluation.judge.spec import Judge
    from repro.runs.cluster import slurm

    monkeypatch.chdir(tmp_path)
    config, _ = resolve_names("tiny", "simpo", num_processes=1)
    pipeline = slurm.build([(config, {})], results_root=tmp_path / "results", benches=["gsm"],
                           judge=Judge(kind="rule"), device="cpu",
                           options=EvalOptions(data_paths={"zeroeval_data": Path("data")}))  # fmt: skip
    assert pipeline.plan["options"]["zeroeval_data"] == str(tmp_path / "data")


def test_the_pipeline_folder_covers_every_evaluation_option(tmp_path, monkeypatch):
    """The pipeline's id hashes its EvalOptions whole: planning again with another --zeroeval-data
    or --backend gets another folder (before, only the limit counted and plan.json was
    overwritten); the same options get the same folder, and default options the id they had."""
    import hashlib

    from repro.evaluation.eval_options import EvalOptions
    from repro.evaluation.judge.spec import Judge
    from repro.runs.cluster import slurm

    monkeypatch.chdir(tmp_path)
    config, _ = resolve_names("tiny", "simpo", num_processes=1)

    def folder(zeroeval_data: Path | None = None, **options) -> Path:
        given = {"zeroeval_data": zeroeval_data} if zeroeval_data else {}
        return slurm.build([(config, {})], results_root=tmp_path / "results", benches=["gsm"],
                           judge=Judge(kind="rule"), device="cpu",
                           options=EvalOptions(**options, data_paths=given)).folder  # fmt: skip

    plain = folder(limit=3)
    assert folder(limit=3) == plain
    assert folder(limit=3, zeroeval_data=Path("data")) == folder(limit=3, zeroeval_data=tmp_path / "data")
    variants = [folder(limit=3, zeroeval_data=Path("a")), folder(limit=3, zeroeval_data=Path("b")),
                folder(limit=3, backend="vllm"), folder(limit=3, max_new_tokens=64),
                folder(limit=3, zeroeval_bos="zeroeval"), folder(limit=4), plain]  # fmt: skip
    assert len(set(variants)) == len(variants)

    directory = slurm.points_for([(config, {})], results_root=tmp_path / "results", limit=3,
                                 backend="transformers")[0].directory  # fmt: skip
    judge = Judge(kind="rule").describe()
    before = {"runs": [str(directory)], "benches": ["gsm"], "judge": judge, "limit": 3}
    digest = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:10]
    assert plain.name == f"tiny-simpo-{digest}"  # a pipeline planned before keeps its folder
    # options as plans recorded them before benchmarks declared their data options: every
    # built-in one named, null where not given; the same options keep that pipeline's folder
    old = {**EvalOptions(limit=3).to_json(), "alpaca_reference": None, "arena_hard_data": None,
           "mt_bench_data": None, "lc_data": None, "zeroeval_data": str(tmp_path / "a")}  # fmt: skip
    digest = hashlib.sha256(json.dumps({**before, "options": old}, sort_keys=True).encode()).hexdigest()[:10]
    assert variants[0].name == f"tiny-simpo-{digest}"


def test_run_and_sweep_share_one_declaration_of_the_slurm_options(tmp_path):
    """repro.cli.slurm.SlurmOptions declares the launcher options once: `run` and `sweep` both list
    its fields, in its order, and get them back as one SlurmOptions (a sweep's site options reach
    every script; --submit without --launcher slurm is refused)."""
    import contextlib
    import dataclasses
    import io as text_io

    import typer

    from repro.cli import main
    from repro.cli import slurm as slurm_cli
    from repro.cli.common import app

    fields = [f.name for f in dataclasses.fields(slurm_cli.SlurmOptions)]
    commands = typer.main.get_command(app).commands
    for name in ("run", "sweep"):
        params = [p.name for p in commands[name].params]
        start = params.index("launcher")
        assert params[start : start + len(fields)] == fields and "slurm" not in params

    def repro(*argv: str) -> tuple[int, str, str]:
        out, err = text_io.StringIO(), text_io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
        return code, out.getvalue(), err.getvalue()

    code, out, err = repro("sweep", "tiny", "--lr", "1e-6,2e-6", "--launcher", "slurm", "--device", "cpu",
                           "--partition", "p1", "--time", "1:00:00", "--max-parallel", "1", "--dry-run",
                           "--results", str(tmp_path / "results"), "--format", "json")  # fmt: skip
    assert code == 0, err
    scripts = json.loads(out)["scripts"]
    for script in scripts.values():
        assert "#SBATCH --partition=p1\n" in script and "#SBATCH --time=1:00:00\n" in script
    assert "#SBATCH --array=0-1%1\n" in scripts["train"]
    code, _, err = repro("run", "tiny", "--submit", "--dry-run")
    assert code == 2 and err == "repro: error: --submit goes with --launcher slurm\n"


FAKE_SRUN = """#!/bin/bash
# the training step: its output goes to train.log as the script redirects it
case "$MODE" in
  preempt) echo '{"step": 5}' > "$DIR/preempted.json"; echo "REPRO_PREEMPTED 5" ;;
  fail) echo "repro: error: CUDA out of memory"; exit 1 ;;
  signal) for _ in $(seq 100); do [ -f "$REPRO_STOP_FILE" ] && break; sleep 0.1; done
          [ -f "$REPRO_STOP_FILE" ] && echo '{"step": 7}' > "$DIR/preempted.json" ;;
  *) echo '{}' > "$DIR/metrics.json" ;;
esac
"""


@pytest.fixture
def train_script(tmp_path):
    from repro.evaluation.judge.spec import Judge
    from repro.runs.cluster import slurm

    config, _ = resolve_names("tiny", "simpo", num_processes=1)
    pipeline = slurm.build(
        [(config, {})], results_root=tmp_path / "results", benches=["alpaca_eval2"],
        judge=Judge(kind="rule"), device="cpu",
    )  # fmt: skip
    script = pipeline.folder / "train.sbatch"  # the script alone: the stand-in srun trains nothing
    script.parent.mkdir(parents=True)
    script.write_text(pipeline.jobs[0].script)
    (pipeline.points[0].root / "train").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "srun", FAKE_SRUN.removeprefix("#!/bin/bash\n"))
    fake_tool(
        bin_dir,
        "scontrol",
        f'[ "$1" = show ] && echo n1 && exit 0\necho "$@" >> {tmp_path / "scontrol.calls"}\n',
    )
    return pipeline.folder / "train.sbatch", pipeline.points[0].root / "train", bin_dir


def run_script(script: Path, bin_dir: Path, mode: str, restarts: int = 0, signal_after: float | None = None):
    import os
    import signal
    import subprocess
    import time

    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MODE": mode, "SLURM_ARRAY_TASK_ID": "0",
           "SLURM_JOB_ID": "77", "SLURM_CPUS_PER_TASK": "1", "SLURM_JOB_NODELIST": "n1",
           "SLURM_RESTART_COUNT": str(restarts)}  # fmt: skip
    proc = subprocess.Popen(
        ["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if signal_after is not None:
        time.sleep(signal_after)
        proc.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@S sends: the batch shell only
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_warning_signal_checkpoints_and_requeues(train_script, tmp_path):
    script, train, bin_dir = train_script
    code, out = run_script(script, bin_dir, "signal", signal_after=1.0)
    assert code == 0, out
    assert "warning signal: checkpoint, then requeue" in out and "requeued after the warning signal" in out
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 77\n"
    assert (train / "stop-requested").exists() and (train / "preempted.json").exists()


def test_real_failures_are_not_requeued(train_script, tmp_path):
    script, train, bin_dir = train_script
    code, out = run_script(script, bin_dir, "fail")
    assert code == 1 and "repro: error: training failed (exit 1): repro: error: CUDA out of memory" in out
    assert not (tmp_path / "scontrol.calls").exists()
    # preempted too often: stops instead of requeueing forever
    code, out = run_script(script, bin_dir, "preempt", restarts=20)
    assert code == 1 and "stopped by the warning signal 20 times; not requeued again" in out
    assert not (tmp_path / "scontrol.calls").exists()
    # finished: the element succeeds, and a resubmission finds it trained
    (train / "model").mkdir()
    (train / "model" / "config.json").write_text("{}")
    code, out = run_script(script, bin_dir, "ok")
    assert code == 0 and "repro: trained" in out
    code, out = run_script(script, bin_dir, "fail")
    assert code == 0 and "is trained already" in out


def test_stage_process_stops_on_the_signal_with_the_requeue_code(monkeypatch):
    """The generation and judging processes: USR1 -> exit 75, which the job script requeues."""
    import os
    import signal

    from repro.runs.cluster import sbatch, stage

    def interrupted(plan, index):
        os.kill(os.getpid(), signal.SIGUSR1)
        raise AssertionError("the signal did not stop the stage")

    monkeypatch.setattr(stage, "generate", interrupted)
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        assert stage.main(["generate", "plan.json", "0"]) == sbatch.REQUEUE_EXIT
    finally:
        signal.signal(signal.SIGUSR1, previous)

"""`repro status RESULTS`: where every run below a results folder stands.

A run's stage comes from its folder alone (so local runs show up too): `result.json` (done),
the pipeline's `stage.json` (generating, judging, failed), `train/preempted.json`, the last
`REPRO_STEP k/n` line of `train/train.log` and its `repro: error` lines. Runs submitted by
`repro run/sweep --launcher slurm --submit` also carry their job ids (RESULTS/slurm/*/
submitted.json); their state comes from `squeue`, then `sacct`, then `scontrol`, whichever
answers, and a failed job's reason from its log.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro import io
from repro.config.runconfig import RunConfig, RunFile
from repro.errors import ReproError
from repro.evaluation import benchmarks, judgecost
from repro.runs.results import verify
from repro.runs.results.result import FILE, RunResult

RUN_ID = re.compile(r"^[0-9a-f]{10}-seed\d+$")
_STEP = re.compile(r"^REPRO_STEP (\d+)/(\d+)$", re.M)
FAILED_STATES = ("FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE")
POINT_KEYS = ("learning_rate", "beta", "gamma_beta_ratio")


@dataclass
class RunStatus:
    run_dir: str
    setting: str
    method: str
    point: dict[str, float] = field(default_factory=dict)
    seed: int | None = None
    max_steps: int | None = None  # --max-steps: training cut short of the recipe's
    kind: str = "not started"  # not started | queued | training | preempted | trained | generating |
    #                             generated | judging | done | failed | unverified | unreadable
    stage: str = "not started"  # the kind in words: "training step 12 of 32", "failed: reason"
    job: str | None = None
    job_state: str | None = None
    judge_cost_usd: float | None = None
    scores: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def point_text(self) -> str:
        """The grid point, the seed and a --max-steps cut: what tells two runs of one point apart."""
        parts = [f"{k.replace('learning_rate', 'lr').replace('gamma_beta_ratio', 'g/b')}={v:g}"
                 for k, v in self.point.items()]  # fmt: skip
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        if self.max_steps is not None:
            parts.append(f"max-steps={self.max_steps}")
        return " ".join(parts)

    def score_text(self) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in self.scores.items() if isinstance(v, (int, float)))


def run_roots(results: Path) -> list[Path]:
    """Every run folder (SETTING/METHOD/RUN-ID) below `results`, in name order."""
    found = {p.parent for p in results.rglob("train") if RUN_ID.match(p.parent.name)}
    found |= {p.parent for p in results.rglob("result.json") if RUN_ID.match(p.parent.name)}
    return sorted(found)


def submissions(results: Path) -> dict[str, dict[str, Any]]:
    """Run folder -> its pipeline's jobs: {"train": "12_0", "generate": "13_0", "judge": "14",
    "directory": evaluation folder}."""
    by_run: dict[str, dict[str, Any]] = {}
    for record_file in sorted(results.rglob("slurm/*/submitted.json")):
        record = io.read_json(record_file) or {}
        jobs = record.get("jobs", {})
        for entry in record.get("runs", []):
            i = entry["index"]
            by_run[entry["root"]] = {
                "train": f"{jobs['train']}_{i}" if "train" in jobs else None,
                "generate": f"{jobs['generate']}_{i}" if "generate" in jobs else None,
                "judge": jobs.get("judge"),
                "directory": entry.get("directory"),
                "log_folder": str(record_file.parent / "logs"),
            }
    return by_run


def collect(results: Path, *, scheduler: bool = True) -> list[RunStatus]:
    """One status per run; `scheduler` False: the folders alone, no SLURM commands."""
    submitted = submissions(results)
    ids = [j for s in submitted.values() for j in (s["train"], s["generate"], s["judge"]) if j]
    states = job_states(ids) if scheduler and ids else {}
    rows = [_status(root, submitted.get(str(root)), states) for root in run_roots(results)]
    return sorted(
        rows,
        key=lambda r: (r.setting, r.method, tuple(r.point.get(k, 0.0) for k in POINT_KEYS), r.seed or 0,
                       r.max_steps or 0),
    )  # fmt: skip


def _config(train: Path) -> RunConfig | None:
    """The config its launcher handed training (train/run.json), or None before it was written."""
    try:
        return RunFile.read(train / "run.json").config
    except ReproError:
        return None  # not launched yet, or a file another repro wrote: the folder names it


def _status(root: Path, jobs: dict[str, Any] | None, states: dict[str, dict[str, str]]) -> RunStatus:
    train = root / "train"
    config = _config(train)
    hp = {**config.hyperparameters, "learning_rate": config.learning_rate} if config else {}
    status = RunStatus(
        run_dir=str(root),
        setting=config.setting if config else root.parent.parent.name,
        method=config.method if config else root.parent.name,
        point={k: hp[k] for k in POINT_KEYS if isinstance(hp.get(k), (int, float))},
        seed=config.seed if config else None,
        max_steps=config.max_steps if config else None,
    )
    directory = Path(jobs["directory"]) if jobs and jobs.get("directory") else root
    found = [directory / FILE]
    if directory == root:  # a local run of another flavour (partial, vLLM)
        found += sorted(root.glob(f"*/{FILE}"))
    read = [(path, *_result(path)) for path in found if path.exists()]
    # the first readable result; else why the first one there cannot be read
    path, record, problem = next((r for r in read if r[1]), read[0] if read else (None, None, None))
    stage = io.read_json(directory / "stage.json") or {}
    if problem is not None:
        # a result that is there but cannot be read is no stage of the pipeline
        status.kind, status.stage = "unreadable", f"result unreadable: {problem}"
    elif record is not None:
        status.kind, status.stage = "done", "done"
        status.scores = {k: record.scores[k] for k in benchmarks.headline() if k in record.scores}
        status.judge_cost_usd = _judge_cost(record)
        if path is not None and (unverified := _unverified(path)):
            status.kind, status.stage = "unverified", f"done, scores unverified: {unverified}"
    else:
        _stage_from_files(status, train, stage)
    current = _current_job(status.kind, jobs)
    if current:
        status.job = current
        state = states.get(current, {})
        status.job_state = state.get("state")
        if status.kind not in ("done", "unverified", "unreadable"):  # its files say more than the job
            _apply_job_state(status, state, current, jobs)
    return status


def _stage_from_files(status: RunStatus, train: Path, stage: dict[str, Any]) -> None:
    if stage.get("stage") == "failed":
        status.kind, status.stage = "failed", f"failed: {stage.get('reason', 'see the judging log')}"
        return
    if stage.get("stage") in ("generating", "generated", "judging"):
        status.kind = stage["stage"]
        done, total = stage.get("done"), stage.get("total")
        status.stage = {"generating": "generating", "generated": "answers written", "judging": "judging"}[
            stage["stage"]
        ]
        if status.kind == "generating" and total:
            status.stage += f" (benchmark {done} of {total})"
        return
    if (train / "metrics.json").exists() and (train / "model" / "config.json").exists():
        status.kind, status.stage = "trained", "trained, waiting to generate"
        return
    log = train / "train.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    steps = _STEP.findall(text)
    preempted = io.read_json(train / "preempted.json")
    if preempted:
        status.kind = "preempted"
        status.stage = f"preempted at step {preempted.get('step')}: checkpoint saved, requeued"
    elif steps:
        status.kind, status.stage = "training", f"training step {steps[-1][0]} of {steps[-1][1]}"
    errors = [line for line in text.splitlines() if "repro: error" in line]
    if errors:
        status.kind, status.stage = "failed", "failed: " + errors[-1].split("repro: error:", 1)[-1].strip()


def _current_job(kind: str, jobs: dict[str, Any] | None) -> str | None:
    if not jobs:
        return None
    if kind in ("not started", "queued", "training", "preempted"):
        return jobs["train"]
    if kind in ("trained", "generating"):
        return jobs["generate"]
    return jobs["judge"] or jobs["generate"]


def _apply_job_state(status: RunStatus, state: dict[str, str], job: str, jobs: dict[str, Any]) -> None:
    name = state.get("state", "")
    if name == "PENDING" and status.kind == "not started":
        reason = state.get("reason")
        status.kind, status.stage = (
            "queued",
            "queued" + (f" ({reason})" if reason and reason != "None" else ""),
        )
    elif name and name.split()[0] in FAILED_STATES and status.kind != "failed":
        reason = _reason_from_logs(Path(jobs["log_folder"]), job) or f"SLURM state {name}"
        status.kind, status.stage = "failed", f"failed: {reason}"


def _reason_from_logs(folder: Path, job: str) -> str | None:
    """The last `repro: error` line of the job's SLURM log."""
    array, _, task = job.partition("_")
    for log in sorted(folder.glob(f"*-{array}_{task}.log" if task else f"*-{array}.log")):
        errors = [l for l in log.read_text(errors="replace").splitlines() if "repro: error" in l]  # noqa: E741
        if errors:
            return errors[-1].split("repro: error:", 1)[-1].strip()
    return None


def _result(path: Path) -> tuple[RunResult | None, str | None]:
    """The result, or why the file that is there cannot be read."""
    try:
        return RunResult.read(path), None
    except ReproError as exc:
        return None, str(exc)


def _unverified(path: Path) -> str | None:
    """Why the score files beside a result do not match its manifest, as `repro compare`
    checks them before it skips a run (None: they match, or no manifest records them)."""
    try:
        problems = verify.verify(path.parent, scores_only=True).problems
    except ReproError:  # no manifest, or one without hashes: compare warns and keeps the run
        return None
    return "; ".join(problems) or None


def _judge_cost(record: RunResult) -> float | None:
    """Calls that reached the judge (cache hits are free) at the estimate's price per call."""
    if record.judge and record.judge.kind == "rule":
        return 0.0
    calls = (record.judge_calls or {}).get("backend_calls")
    if calls is None:
        return None
    estimate = judgecost.estimate(list(record.benchmarks), limit=record.limit)
    per_call = estimate["estimated_cost_usd"] / estimate["total_calls"] if estimate["total_calls"] else 0.0
    return round(calls * per_call, 2)


# -- the scheduler ------------------------------------------------------------------------------


def job_states(ids: list[str]) -> dict[str, dict[str, str]]:
    """State (and pending reason) of each job id ("123" or array element "123_4"): squeue for
    jobs in the queue, sacct or scontrol for finished ones; absent when nothing answers."""
    arrays = sorted({i.split("_")[0] for i in ids})
    states: dict[str, dict[str, str]] = {}
    if shutil.which("squeue"):
        out = _run(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(arrays)])
        for line in out.splitlines():
            job, state, reason = (line.split("|") + ["", ""])[:3]
            states[job.strip()] = {"state": state.strip(), "reason": reason.strip()}
    missing = [i for i in ids if i not in states]
    if missing and shutil.which("sacct"):
        out = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(arrays)])
        for line in out.splitlines():
            job, _, state = line.partition("|")
            states.setdefault(job.strip(), {"state": state.strip()})
    missing = [i for i in ids if i not in states]
    if missing and shutil.which("scontrol"):
        for array in sorted({i.split("_")[0] for i in missing}):
            for line in _run(["scontrol", "show", "job", "--oneliner", array]).splitlines():
                fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
                task = fields.get("ArrayTaskId")
                job = f"{fields.get('ArrayJobId')}_{task}" if task else fields.get("JobId", "")
                states.setdefault(
                    job, {"state": fields.get("JobState", ""), "reason": fields.get("Reason", "")}
                )
    return states


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout if proc.returncode == 0 else ""

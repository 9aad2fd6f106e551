"""Experiment trackers on the real training path (ZeRO-3, 2 CPU processes), and the trainer's
logging names.

Oracle: the run's own metrics.json log history (what the Trainer logged on rank 0). The
TensorBoard event files are read back with tensorboard's EventAccumulator; each step's
`train/rewards/margins` must equal the logged value within 1e-6 relative (event files
store float32). W&B runs offline (WANDB_MODE=offline); its local run folder must exist,
once (rank 0 only), and the history records of its run file (read with wandb's protobuf
schema) must hold exactly the logged margins at the logged optimizer steps. Sentinel keys in
the environment must appear in no file of the run directory.

Needs the tensorboard and wandb packages (not in env/lock-cpu.txt yet): skipped without.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from repro.config.settings import parse_report_to
from repro.runs.analysis import curves
from repro.train.outcome import TrainingOutcome

pytestmark = pytest.mark.e2e  # multi-process training, generation or judging (make test-fast skips it)

MISSING = [p for p in ("tensorboard", "wandb") if importlib.util.find_spec(p) is None]
SENTINEL = "0123456789abcdef0123456789abcdef01234567"  # shaped like a W&B key (40 hex)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    if MISSING:
        pytest.skip(f"needs the {' and '.join(MISSING)} package(s): pip install tensorboard wandb")
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("trackers") / "tiny-simpo"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "REPRO_CACHE": str(tmp_path_factory.mktemp("cache")),
            "WANDB_MODE": "offline",
            "WANDB_API_KEY": SENTINEL,
            "OPENAI_API_KEY": "sk-" + SENTINEL,
            "WANDB_SILENT": "true",
        }.items():
            env.setenv(name, value)
        env.delenv("WANDB_DIR", raising=False)
        proc = run_cli(
            "train",
            "tiny",
            "--method",
            "simpo",
            "--output",
            str(out),
            "--report-to",
            "tensorboard,wandb",
            check=True,
        )
    return out, proc


def wandb_records(path: Path) -> list:
    """The records of an offline W&B run file (wandb's LevelDB-style log: a 7-byte header,
    32 KiB blocks of [crc32, length, type, data] chunks), as wandb's protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunks, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # full
            chunks.append(chunk)
        elif kind == 2:  # first
            pending = chunk
        elif kind == 3:  # middle
            pending += chunk
        elif kind == 4:  # last
            chunks.append(pending + chunk)
    records = []
    for raw in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        records.append(record)
    return records


def logged(out: Path) -> list[dict]:
    return curves.training_logs(json.loads((out / "metrics.json").read_text())["log_history"])


def test_tensorboard_event_files_hold_the_logged_margins(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trackers"]["tensorboard"]["dir"] == str(out / "tensorboard")
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert set(curves.TRAINER_KEYS) <= set(events.Tags()["scalars"])
    scalars = events.Scalars("train/rewards/margins")
    history = logged(out)
    assert len(history) >= 6  # 32 steps, a log every 5
    assert [s.step for s in scalars] == [h["step"] for h in history]  # once per step: rank 0 only
    for event, row in zip(scalars, history, strict=True):
        assert event.value == pytest.approx(row["rewards/margins"], rel=1e-6, abs=1e-7)
    assert "eval/rewards/accuracies" in events.Tags()["scalars"]  # the final held-out evaluation too


def test_wandb_offline_run_is_written_once(trained):
    out, _ = trained
    info = json.loads((out / "metrics.json").read_text())["trackers"]
    wandb = info["wandb"]
    assert wandb["mode"] == "offline" and wandb["url"] is None and wandb["project"] == "repro"
    assert wandb["name"] == info["run_name"] and info["run_name"].startswith("tiny-simpo-")
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and str(runs[0]) == wandb["dir"]  # rank 0 only
    records = wandb_records(next(runs[0].glob("run-*.wandb")))
    assert [r.run.display_name for r in records if r.WhichOneof("record_type") == "run"] == [info["run_name"]]
    history = [
        {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    margins = [
        (h["train/global_step"], h["train/rewards/margins"]) for h in history if "train/rewards/margins" in h
    ]
    assert margins == [(h["step"], h["rewards/margins"]) for h in logged(out)]


def test_no_key_reaches_the_run_directory(trained):
    out, proc = trained
    assert SENTINEL not in proc.stdout + proc.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path


def test_trainer_logs_under_the_original_names_and_matches_itself(trained, cli, tmp_path):
    from repro.runs.pipeline import run

    out, _ = trained
    first = logged(out)[0]
    assert {curves.tracker_key(k) for k in first} >= set(curves.TRAINER_KEYS)
    run.curves(TrainingOutcome.read(out).log_history, tmp_path)
    with open(tmp_path / "curves.csv", newline="") as fh:
        assert set(curves.TRAINER_KEYS) <= set(next(csv.reader(fh)))
    report = json.loads(
        cli("compare", str(out), "--curves", str(tmp_path / "curves.csv"), "-f", "json", check=True).stdout
    )
    assert report["align"] == "step" and all(m["max_abs_deviation"] == 0 for m in report["metrics"])


def test_report_to_choices_and_defaults(cli, tmp_path, monkeypatch):
    from repro.errors import ReproError
    from repro.train import trackers

    assert parse_report_to("none") == [] and parse_report_to(None) == []
    assert parse_report_to("wandb, tensorboard,wandb") == ["wandb", "tensorboard"]
    bad = cli("train", "tiny", "--report-to", "wandb,mlflow", "--dry-run", "--output", str(tmp_path / "b"))
    assert bad.returncode == 2 and "unknown tracker (report_to) 'mlflow'" in bad.stderr
    dry = cli(
        "train", "tiny", "--dry-run", "--output", str(tmp_path / "d"),
        "--planned-files", str(tmp_path / "planned"), check=True,
    )  # fmt: skip
    planned = Path(dry.stderr.split("the planned files are in ")[1].split()[0])  # nothing in the output
    assert json.loads((planned / "run.json").read_text())["config"]["report_to"] == []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ReproError, match="report_to wandb needs the wandb package"):
        trackers.check_installed(["wandb"])


def test_handbook_configs_keep_their_wandb(shared, cli):
    path = shared / "reference" / "simpo-repo" / "training_configs" / "gemma-2-9b-it-simpo.yaml"
    config = json.loads(cli("show", str(path), "--method", "simpo", "--format", "json", check=True).stdout)
    assert config["report_to"] == ["wandb"]
    ours = json.loads(cli("show", "gemma2-9b-it", "--method", "simpo", "--format", "json", check=True).stdout)
    assert ours["report_to"] == []  # repro's settings report nowhere unless asked

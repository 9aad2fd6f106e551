"""The train stage (repro.runs.pipeline.training) and its typed outcome (metrics.json): one code path for
`repro train` and `repro run`, a strict reader that still reads files written before the record
had a schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.errors import ReproError
from repro.train.outcome import SCHEMA, TrainingOutcome

# metrics.json as the worker wrote it before the record was typed (no `schema` key)
SCHEMA_0 = {
    "train": {"loss": 0.5, "step": 8},
    "train_summary": {"train_loss": 0.6},
    "eval": {"eval_loss": 0.4, "eval_rewards/accuracies": 0.9},
    "eval_before_training": {"eval_loss": 0.7, "eval_rewards/accuracies": 0.5},
    "steps": 8,
    "train_seconds": 12.5,
    "world_size": 2,
    "engine": {"class": "DeepSpeedEngine", "deepspeed": True, "zero_stage": 3, "device": "cpu"},
    "data": {"train": {"rows": 100, "kept": 96}},
    "reference": None,
    "resumed_from": None,
    "log_history": [{"loss": 0.5, "step": 8}],
    "trackers": None,
}


def test_outcome_round_trips_and_reads_schema_0(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(SCHEMA_0))
    old = TrainingOutcome.read(tmp_path)
    assert old.schema == 0 and old.steps == 8 and old.train_rows_kept == 96
    assert (old.held_out_accuracy, old.accuracy_before, old.held_out_loss) == (0.9, 0.5, 0.4)
    new = TrainingOutcome(**{**SCHEMA_0, "schema": SCHEMA})
    new.write(tmp_path / "again")
    data = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert data == {**SCHEMA_0, "schema": SCHEMA}  # the same keys: curves and W&B tools read them
    assert TrainingOutcome.read(tmp_path / "again") == new
    assert TrainingOutcome.read(tmp_path / "nothing-here") is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({**SCHEMA_0, "extra": 1}, "unknown key 'extra'"),
        ({k: v for k, v in SCHEMA_0.items() if k != "eval"}, "missing key 'eval'"),
        ({**SCHEMA_0, "schema": SCHEMA + 1}, "newer than this repro reads"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_outcome_is_read_strictly_in_one_line(tmp_path, data, message):
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(ReproError, match=message) as info:
        TrainingOutcome.read(tmp_path)
    assert str(tmp_path / "metrics.json") in str(info.value) and "\n" not in str(info.value)


class _Stop(Exception):
    """Raised by the stand-in stage: the caller got as far as training, and no further."""


def test_repro_train_and_repro_run_share_the_train_stage(tmp_path, monkeypatch):
    from repro.cli.main import main
    from repro.config.resolution import resolve_names
    from repro.evaluation import runner
    from repro.runs.pipeline import preflight, run, training

    calls: list[tuple[str, Path]] = []

    def stage(config, directory, **kwargs):
        calls.append((config.run_id, Path(directory)))
        raise _Stop

    monkeypatch.setattr(training, "train", stage)
    monkeypatch.setattr(preflight, "require", lambda *a, **k: None)
    with pytest.raises(_Stop):
        main(["train", "tiny", "--method", "simpo", "--max-steps", "2", "--output", str(tmp_path / "t")])
    config, _ = resolve_names("tiny", "simpo", max_steps=2)
    judge = runner.Judge.choose(None, config.evaluation)
    with pytest.raises(_Stop):
        run.execute(config, results_root=tmp_path / "r", benches=["gsm"], judge=judge)
    assert [c[0] for c in calls] == [config.run_id, config.run_id]
    assert calls[0][1] == tmp_path / "t" and calls[1][1].name == "train"


def test_a_folder_of_another_config_is_refused(tmp_path):
    from repro.config.resolution import resolve_names
    from repro.runs.pipeline import training

    config, _ = resolve_names("tiny", "simpo", max_steps=2)
    assert training.finished(config, tmp_path / "absent") is None
    (tmp_path / "metrics.json").write_text(json.dumps(SCHEMA_0))
    (tmp_path / "run.json").write_text(json.dumps({"config": {"config_hash": "another"}}))
    with pytest.raises(ReproError, match="another config"):
        training.finished(config, tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"config": {"config_hash": config.config_hash}}))
    assert training.finished(config, tmp_path) is None  # no model yet: not finished
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert training.finished(config, tmp_path).steps == 8


def test_config_options_resolve_as_the_flags_did():
    from repro.config.config_options import ConfigOptions
    from repro.config.resolution import resolve_names

    options = ConfigOptions(overrides=("beta=3",), num_processes=1, max_steps=4, padding_free=True)
    config, _ = options.resolve("tiny", "simpo")
    flags, _ = resolve_names(
        "tiny", "simpo", overrides=["beta=3"], num_processes=1, max_steps=4, padding_free=True
    )
    assert config.config_hash == flags.config_hash and config.batch.num_processes == 1
    point, _ = options.with_overrides({"learning_rate": 1e-4}).resolve("tiny", "simpo")
    assert point.learning_rate == 1e-4 and point.hyperparameters["beta"] == 3

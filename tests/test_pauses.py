"""`$REPRO_TEST_PAUSE` and `$REPRO_TEST_KILL_AT`, the switches tests have inside the library, in one
place (repro/pauses.py)."""

from __future__ import annotations

import time

import pytest

from repro import pauses
from repro.errors import ReproError


def test_pause_reads_its_point_and_nothing_else(monkeypatch):
    monkeypatch.delenv(pauses.ENV, raising=False)
    assert [pauses.seconds(p) for p in pauses.POINTS] == [0.0, 0.0, 0.0]
    monkeypatch.setenv(pauses.ENV, "train.step=0.4, generate.batch=0.05")
    assert pauses.seconds("train.step") == 0.4 and pauses.seconds("onpolicy.batch") == 0.0
    start = time.perf_counter()
    pauses.pause("generate.batch")
    assert time.perf_counter() - start >= 0.05


@pytest.mark.parametrize(("value", "words"), [("train.stpe=1", "unknown point 'train.stpe'"),
                                              ("train.step=soon", "is not POINT=SECONDS")])  # fmt: skip
def test_a_bad_value_is_one_line(value, words, monkeypatch):
    monkeypatch.setenv(pauses.ENV, value)
    with pytest.raises(ReproError, match=words):
        pauses.pause("train.step")


def test_a_kill_is_asked_for_at_one_phase_and_step_only(monkeypatch):
    monkeypatch.delenv(pauses.KILL_ENV, raising=False)
    assert not any(pauses.kill_requested(p, 16) for p in pauses.KILL_PHASES)
    pauses.kill_at("model", 16)  # unset: returns at once
    monkeypatch.setenv(pauses.KILL_ENV, "optimizer:16")
    asked = [(p, s) for p in pauses.KILL_PHASES for s in (8, 16) if pauses.kill_requested(p, s)]
    assert asked == [("optimizer", 16)]
    pauses.kill_at("optimizer", 8)  # another step: no kill


@pytest.mark.parametrize(("value", "words"), [("weights:16", "unknown phase 'weights'"),
                                              ("model", "is not PHASE:STEP"),
                                              ("model:soon", "is not PHASE:STEP")])  # fmt: skip
def test_a_bad_kill_point_is_one_line(value, words, monkeypatch):
    monkeypatch.setenv(pauses.KILL_ENV, value)
    with pytest.raises(ReproError, match=words):
        pauses.kill_at("model", 16)

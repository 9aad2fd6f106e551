"""`$REPRO_TEST_PAUSE`, the one switch tests have inside the library (repro/pauses.py)."""

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

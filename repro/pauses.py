"""Deliberate pauses at named points of long work: the one switch tests have inside the library.

Kill-and-resume tests need time to kill or signal a run at a known place (mid-training, between
two batches of answers). They set `REPRO_TEST_PAUSE` to `POINT=SECONDS` pairs, comma-separated,
for the processes they start, e.g. `REPRO_TEST_PAUSE=train.step=0.4`. The points:
- `train.step`: after each optimizer step, on every training process;
- `generate.batch`: after each batch of answers a transformers engine generates;
- `onpolicy.batch`: after each batch of on-policy samples is written.

Real runs never set it, and `pause` then returns at once.
"""

from __future__ import annotations

import os
import time

from repro.errors import ReproError

ENV = "REPRO_TEST_PAUSE"
POINTS = ("train.step", "generate.batch", "onpolicy.batch")


def seconds(point: str) -> float:
    """The pause `$REPRO_TEST_PAUSE` asks for at `point` (0: none)."""
    assert point in POINTS, point
    found = 0.0
    for pair in filter(None, (p.strip() for p in os.environ.get(ENV, "").split(","))):
        name, _, value = pair.partition("=")
        if name not in POINTS:
            raise ReproError(f"${ENV}: unknown point '{name}' (valid: {', '.join(POINTS)})")
        try:
            pause = float(value)
        except ValueError:
            raise ReproError(f"${ENV}: '{pair}' is not POINT=SECONDS") from None
        if name == point:
            found = pause
    return found


def pause(point: str) -> None:
    """Sleep as long as `$REPRO_TEST_PAUSE` asks at `point`; at once when it is unset."""
    if wait := seconds(point):
        time.sleep(wait)

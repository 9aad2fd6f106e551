"""The switches tests have inside the library, in one place: deliberate pauses and kills at named
points of long work.

Kill-and-resume tests need time to kill or signal a run at a known place (mid-training, between
two batches of answers). They set `REPRO_TEST_PAUSE` to `POINT=SECONDS` pairs, comma-separated,
for the processes they start, e.g. `REPRO_TEST_PAUSE=train.step=0.4`. The points:
- `train.step`: after each optimizer step, on every training process;
- `generate.batch`: after each batch of answers a transformers engine generates;
- `onpolicy.batch`: after each batch of on-policy samples is written.

A kill at an exact place inside a checkpoint write cannot be timed from outside, so tests set
`REPRO_TEST_KILL_AT=PHASE:STEP` and the run SIGKILLs its launcher's whole process group, then
itself, at that point of the write of checkpoint STEP (`kill_at`). The phases:
- `model`: the weights written, nothing else;
- `optimizer`: the optimizer written, not the RNG or trainer state;
- `state`: everything written, not yet published;
- `published`: published, older checkpoints not yet rotated.

Real runs set neither, and `pause` and `kill_at` then return at once.
"""

from __future__ import annotations

import os
import signal
import time

from repro.errors import ReproError

ENV = "REPRO_TEST_PAUSE"
POINTS = ("train.step", "generate.batch", "onpolicy.batch")
KILL_ENV = "REPRO_TEST_KILL_AT"
KILL_PHASES = ("model", "optimizer", "state", "published")


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


def kill_requested(phase: str, step: int) -> bool:
    """Whether `$REPRO_TEST_KILL_AT` asks for a kill at `phase` of checkpoint `step`."""
    assert phase in KILL_PHASES, phase
    value = os.environ.get(KILL_ENV, "").strip()
    if not value:
        return False
    name, sep, at = value.partition(":")
    if name not in KILL_PHASES:
        raise ReproError(f"${KILL_ENV}: unknown phase '{name}' (valid: {', '.join(KILL_PHASES)})")
    if not sep or not at.isdigit():
        raise ReproError(f"${KILL_ENV}: '{value}' is not PHASE:STEP")
    return (name, int(at)) == (phase, step)


def kill_at(phase: str, step: int) -> None:
    """SIGKILL the run (the launcher's process group, then this process) when `$REPRO_TEST_KILL_AT`
    names this point; at once when it is unset."""
    if not kill_requested(phase, step):
        return
    os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)  # `kill -9 -- -PGID` of the launcher's group
    os.kill(os.getpid(), signal.SIGKILL)

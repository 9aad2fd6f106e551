"""Where a training step's time and memory go, for `repro bench train`'s worker
(repro.perf.train_worker): the peak resident memory of each segment of a step (`Memory`), the
seconds of each phase (`Phases`, wrapped around the trainer's calls by `instrument`), and their
medians over the timed steps (`summarize_phases`).

The worker loads this file by path from its own tree (the working tree), never from the tree
under test, so both sides of `--against` are timed by the same code; it imports nothing of
repro at the top (`instrument` reaches the tree under test's trainer pieces when it runs).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path


class Memory:
    """Peak resident memory per segment of a step, from the kernel's high-water mark.

    Linux keeps a process's peak RSS (VmHWM) and resets it on `5 > /proc/self/clear_refs`;
    reading and resetting it at each boundary gives every segment its own peak. `overall`
    keeps the process's peak across resets (what ru_maxrss would have said). Elsewhere, or
    where the file cannot be written, it records nothing.
    """

    def __init__(self):
        self.overall = self._hwm() or 0
        self.enabled = self._reset()
        self.label: str | None = None
        self.peaks: dict[str, int] = {}

    @staticmethod
    def _hwm() -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    @staticmethod
    def _reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def enter(self, label: str | None) -> None:
        """Close the current segment (its peak since the last boundary) and open `label`."""
        if not self.enabled:
            return
        peak = self._hwm() or 0
        self.overall = max(self.overall, peak)
        if self.label is not None:
            self.peaks[self.label] = max(self.peaks.get(self.label, 0), peak)
        self._reset()
        self.label = label

    def peak(self) -> int:
        self.enter(self.label)
        return self.overall


class Phases:
    """Seconds per step in each phase, from wrappers around the trainer's calls.

    forward_backward: Trainer.training_step; head: the chunked head's forward and backward
    (repro); loss: the objective (repro); optimizer: from the end of the step's last
    forward/backward to its end (gradient clipping, AdamW, scheduler, zero_grad); data: the
    collator (called before the step begins: outside the timed window). Derived: body =
    forward_backward - head - loss; other = step - forward_backward - optimizer.
    Memory: the peak RSS of each segment of the timed steps (body forward, head forward,
    loss, head backward, body backward, optimizer; TRL: forward/backward, optimizer).
    """

    # segment a wrapper's start and end open, per phase and per direction of the head
    SEGMENTS = {
        "head:forward": ("head forward", "loss"),
        "head:backward": ("head backward", "body backward"),
        "forward_backward": (None, "optimizer"),
    }

    def __init__(self, memory: Memory | None = None):
        self.current: dict[str, float] = defaultdict(float)
        self.pending_data = 0.0
        self.steps: list[dict[str, float]] = []
        self.mark = 0.0
        self.memory = memory
        self.timing = False  # only inside a step: the reference log-probs before training are not one

    def wrap(self, name: str, fn, segment: str | None = None):
        opens, closes = self.SEGMENTS.get(segment or name, (None, None))

        def timed(*args, **kwargs):
            if self.memory and self.timing and opens:
                self.memory.enter(opens)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                if name == "data":
                    self.pending_data += elapsed
                else:
                    self.current[name] += elapsed
                if name == "forward_backward":
                    self.mark = time.perf_counter()
                if self.memory and self.timing and closes:
                    self.memory.enter(closes)

        return timed

    def begin(self, repro: bool) -> None:
        self.current = defaultdict(float, data=self.pending_data)
        self.pending_data = 0.0
        self.timing = True
        if self.memory:
            self.memory.enter("body forward" if repro else "forward/backward")

    def end(self, step: float) -> None:
        self.current["optimizer"] = time.perf_counter() - self.mark
        self.current["step"] = step
        self.steps.append(dict(self.current))
        self.timing = False
        if self.memory:
            self.memory.enter(None)


def instrument(trainer, phases: Phases, repro: bool) -> None:
    """Wrap the trainer's calls (and repro's head and objective) to time each phase."""
    trainer.training_step = phases.wrap("forward_backward", trainer.training_step)
    trainer.data_collator = phases.wrap("data", trainer.data_collator)
    if not repro:
        return
    try:  # the revision under test may predate these names: then no head/loss split
        from repro.train import chunked, objectives

        head = chunked.ChunkedHeadLogps
        head.forward = staticmethod(phases.wrap("head", head.forward, "head:forward"))
        head.backward = staticmethod(phases.wrap("head", head.backward, "head:backward"))
        objectives.compute = phases.wrap("loss", objectives.compute)
    except (ImportError, AttributeError):
        pass


def summarize_phases(steps: list[dict[str, float]]) -> dict[str, float]:
    """Median seconds per phase over the timed steps, with body and other derived."""
    if not steps:
        return {}
    names = sorted({k for s in steps for k in s})
    med = {n: _median([s.get(n, 0.0) for s in steps]) for n in names}
    if "head" in med:
        med["body"] = max(0.0, med["forward_backward"] - med["head"] - med.get("loss", 0.0))
    med["other"] = max(0.0, med["step"] - med["forward_backward"] - med["optimizer"])
    return med


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2

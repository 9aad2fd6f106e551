"""The chunked LM head's tile size, chosen by measured throughput on this machine.

A tile is the block of logits the head computes at once (repro.train.chunked): `tokens` rows by
`vocab` vocabulary entries, looping over vocabulary blocks outside and tokens inside. Its size
sets how fast the matrix products and the log-softmax run (cache and thread use) and adds one
tile of memory to the step, nothing else: the head's memory no longer grows with the chunk.

The choice is measured, not budgeted: the first time a head shape (hidden size, vocabulary,
dtype) trains on a machine (CPU model or GPU name, threads, torch version), every candidate
tile runs the head's forward and backward on the same synthetic block of tokens and vocabulary,
`REPEATS` times in rotating order, and the fastest minimum wins; among candidates within
`TOLERANCE` of it, the largest: fewer tiles mean fewer parallel regions, and on cores shared
with other work each one can wait a time slice for a descheduled thread (on a loaded 2-core
machine, 256 x 1024 tiles ran the cpu-small head 14x slower than 1024 x 4096). The memory this
costs is bounded by the candidates: at most 16 MiB of fp32 logits on CPU. The
result is cached in $REPRO_CACHE/head-tiles.json, so every later run on that machine uses the
same tile: sums and gradients depend on the tile in the last bits of fp32 (summation order),
and repeated runs stay bitwise comparable. A file lock lets one process measure while the
others (the ranks of a ZeRO-3 run) wait for its answer. Heads too small for the choice to
matter (under SMALL_HEAD weight entries) take one tile over the whole vocabulary unmeasured.
REPRO_HEAD_TILE=TOKENSxVOCAB (e.g. 256x1024) sets the tile instead, for experiments.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from repro import io, paths
from repro.errors import ReproError
from repro.stack import environment


@dataclass(frozen=True)
class Tile:
    """Logits computed at once: `tokens` rows by `vocab` vocabulary entries."""

    tokens: int
    vocab: int

    def __post_init__(self) -> None:
        if self.tokens < 1 or self.vocab < 1:
            raise ValueError(f"a tile needs at least one token and one vocabulary entry, not {self}")

    def bytes(self) -> int:
        return 4 * self.tokens * self.vocab  # fp32 logits


# Candidates per device type: tokens x vocabulary entries, each at most MAX_TILE_BYTES of fp32
# logits (on CPU 16 MiB at most: the old 32-token chunks' budget at a 128k vocabulary). The
# products stay large in the token dimension at any of them; a GPU wants larger tiles.
CANDIDATES = {
    "cpu": [Tile(t, v) for t in (256, 1024) for v in (1024, 2048, 4096)],
    "cuda": [Tile(t, v) for t in (2048, 8192) for v in (8192, 16384, 32768)],
}
MAX_TILE_BYTES = {"cpu": 2**26, "cuda": 2**30}
REPEATS = 2
TOLERANCE = 0.03
SMALL_HEAD = 2**22  # hidden x vocabulary: 16 MiB of fp32 weights
CACHE_NAME = "head-tiles.json"


def machine_key(device: torch.device) -> str:
    """What the measurement depends on besides the head's shape."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else environment.cpu_name()
    return f"{device.type}|{name}|threads={torch.get_num_threads()}|torch={torch.__version__}"


def choose(hidden_size: int, vocab_size: int, dtype: torch.dtype, device: torch.device, kernel) -> Tile:
    """The tile for this head on this machine: REPRO_HEAD_TILE, or cached, or measured now and
    cached. `kernel`: the head's autograd Function (repro.train.chunked.ChunkedHeadLogps)."""
    forced = os.environ.get("REPRO_HEAD_TILE")
    if forced:
        return parse(forced)
    if hidden_size * vocab_size <= SMALL_HEAD:
        return Tile(tokens=1024, vocab=vocab_size)
    key = f"{machine_key(device)}|{dtype}|hidden={hidden_size}|vocab={vocab_size}"
    path = paths.cache_root() / CACHE_NAME
    cached = _lookup(path, key)
    if cached:
        return cached
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(CACHE_NAME + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process measures; the others wait and read
        cached = _lookup(path, key)
        if cached:
            return cached
        timings = measure(hidden_size, vocab_size, dtype, device, kernel)
        tile = pick(timings)
        table = io.read_json(path) or {}
        table[key] = {
            "tokens": tile.tokens,
            "vocab": tile.vocab,
            "seconds": {f"{t.tokens}x{t.vocab}": s for t, s in timings.items()},
            "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_1min": round(os.getloadavg()[0], 2),
        }
        io.write_json(path, table)
    return tile


def parse(text: str) -> Tile:
    """TOKENSxVOCAB, e.g. 1024x4096."""
    try:
        tokens, vocab = (int(x) for x in text.lower().split("x"))
        return Tile(tokens, vocab)
    except ValueError:
        raise ReproError(f"REPRO_HEAD_TILE={text!r}: expected TOKENSxVOCAB, e.g. 1024x4096") from None


def _lookup(path: Path, key: str) -> Tile | None:
    entry = (io.read_json(path) or {}).get(key)
    return Tile(entry["tokens"], entry["vocab"]) if entry else None


def candidates(vocab_size: int, device: torch.device) -> list[Tile]:
    kind = "cuda" if device.type == "cuda" else "cpu"
    out = []
    for tile in CANDIDATES[kind]:
        tile = Tile(tile.tokens, min(tile.vocab, vocab_size))
        if tile.bytes() <= MAX_TILE_BYTES[kind] and tile not in out:
            out.append(tile)
    return out


def measure(
    hidden_size: int, vocab_size: int, dtype: torch.dtype, device: torch.device, kernel
) -> dict[Tile, float]:
    """Seconds per candidate (best of REPEATS) for the head's forward and backward on one block:
    as many tokens as the largest candidate holds, as many vocabulary entries as its widest."""
    tiles = candidates(vocab_size, device)
    tokens = max(t.tokens for t in tiles)
    vocab = min(vocab_size, max(t.vocab for t in tiles))
    g = torch.Generator(device="cpu").manual_seed(0)
    hidden = torch.randn(tokens, hidden_size, generator=g).to(device, dtype).requires_grad_()
    weight = (torch.randn(vocab, hidden_size, generator=g) * hidden_size**-0.5).to(device, dtype)
    weight.requires_grad_()
    targets = torch.randint(0, vocab, (tokens,), generator=g).to(device)
    upstream = torch.randn(tokens, generator=g).to(device)

    def once(tile: Tile) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = kernel.apply(hidden, weight, None, targets, tile, None)
        torch.autograd.grad(out, (hidden, weight), upstream)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    # the first head of a run may be an evaluation's (the Trainer's eval before training runs
    # under no_grad): the measurement times the backward too, so it turns gradients back on
    with torch.enable_grad():
        once(tiles[0])  # warm-up: first-touch of the buffers, kernels' start
        best = {t: float("inf") for t in tiles}
        for r in range(REPEATS):
            for tile in tiles[r % len(tiles) :] + tiles[: r % len(tiles)]:
                best[tile] = min(best[tile], once(tile))
    return best


def pick(timings: dict[Tile, float]) -> Tile:
    """The largest tile within TOLERANCE of the fastest."""
    fastest = min(timings.values())
    near = [t for t, s in timings.items() if s <= fastest * (1 + TOLERANCE)]
    return max(near, key=lambda t: (t.bytes(), -timings[t]))

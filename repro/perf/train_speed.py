"""`repro bench train`: training speed and memory of repro against TRL 1.16, in one run.

Each contender trains a Llama-shaped random-init model for a preset's steps in a fresh
process (repro.perf.train_worker; so peak memory is its own: RSS on CPU, peak allocated on
GPU), on the same synthetic pairs whose lengths are log-normal like UltraFeedback's.
Contenders run in an order that alternates between rounds, and every ratio compares two
contenders of the same run on the same machine. Throughput counts real (non-padding) tokens:
prompt and response of chosen and rejected. Figures are medians over rounds, with their range.

`against`: the same preset on another git revision of repro (a temporary worktree, the same
environment), interleaved with the working tree contender by contender (A B, then B A in the
next round), and the change per contender with a confidence band (repro.perf.stats).

Each run also measures the machine's matrix-multiply peak (before the first contender and
after the last, in processes of their own) and reports every contender's model FLOP/s
(repro.perf.train_worker.model_flops) against it: MFU. Where a repro contender's step time
goes (body, head, loss, optimizer, data) is timed inside its own steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import paths
from repro.config.validate import read_yaml
from repro.errors import ReproError, unknown
from repro.perf import load, revisions, stats, train_worker

PRESETS = paths.ROOT / "perf" / "train-presets.yaml"
WORKER = Path(train_worker.__file__)
CONTENDERS = (
    "repro-simpo",
    "trl-cpo-simpo",
    "repro-simpo-packed",
    "repro-dpo-precomputed",
    "trl-dpo-precomputed",
    "repro-dpo-live",
)
# (name, numerator, denominator)
RATIOS = (
    ("SimPO: repro vs TRL CPOTrainer(simpo)", "repro-simpo", "trl-cpo-simpo"),
    ("DPO, precomputed reference: repro vs TRL DPOTrainer", "repro-dpo-precomputed", "trl-dpo-precomputed"),
    ("repro SimPO: packed vs padded", "repro-simpo-packed", "repro-simpo"),
    ("repro: SimPO vs DPO with a live reference", "repro-simpo", "repro-dpo-live"),
)
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM (datasheets)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model: dict[str, Any]
    dtype: str
    attn_implementation: str
    max_length: int
    max_prompt_length: int
    pairs_per_step: int
    warmup_steps: int
    steps: int
    zero3: bool
    contenders: tuple[str, ...]
    lengths: dict[str, float]
    requires_gpu: bool = False
    gradient_checkpointing: bool = False  # for every contender (the real settings use it)

    def spec(self) -> dict[str, Any]:
        """The preset as data, for the worker (which may run another revision's code)."""
        return dataclasses.asdict(self)


def load_presets(path: Path = PRESETS) -> dict[str, Preset]:
    data = read_yaml(path)
    lengths = data.pop("lengths")
    presets = {}
    for name, spec in data.items():
        spec = dict(spec)
        contenders = tuple(spec.pop("contenders"))
        for c in contenders:
            if c not in CONTENDERS:
                raise unknown(f"contender in preset {name}", c, CONTENDERS)
        presets[name] = Preset(name=name, contenders=contenders, lengths=lengths, **spec)
    return presets


def get_preset(name: str) -> Preset:
    presets = load_presets()
    if name not in presets:
        raise unknown("benchmark preset", name, tuple(presets))
    return presets[name]


# ---------------------------------------------------------------------------- the whole run

WORKING = "working"  # the working tree's side; the other side is named by its revision


@dataclass(frozen=True)
class Job:
    round: int
    contender: str
    side: str  # WORKING or the --against revision as given


def order(contenders: tuple[str, ...], rounds: int) -> list[str]:
    """Round r runs the contenders forwards when r is even, backwards when odd."""
    out: list[str] = []
    for r in range(rounds):
        out += list(contenders if r % 2 == 0 else reversed(contenders))
    return out


def schedule(contenders: tuple[str, ...], rounds: int, against: str | None = None) -> list[Job]:
    """Every contender each round, in `order`; with `against`, each one on both sides back to
    back, the working tree first in even rounds and second in odd ones (A B, then B A)."""
    jobs = []
    for r in range(rounds):
        ordered = contenders if r % 2 == 0 else tuple(reversed(contenders))
        sides = [WORKING] if against is None else [WORKING, against][:: 1 if r % 2 == 0 else -1]
        jobs += [Job(r, c, side) for c in ordered for side in sides]
    return jobs


def check_device(preset: Preset) -> None:
    if preset.requires_gpu:
        # deferred: torch takes about 2 s to import
        import torch

        if not torch.cuda.is_available():
            raise ReproError(f"preset {preset.name} needs a CUDA GPU (this machine has none); try cpu-small")


def _environment(tree: Path) -> dict[str, str]:
    return {
        **os.environ,
        # the tree under test first: its repro package wins over the installed (editable) one
        "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
        # glibc: serve allocations over 1 MiB by mmap, so freed tensors go back to the OS and
        # peak RSS tracks live memory, not the allocator's cache. The same for every contender.
        "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "1048576"),
        # DeepSpeed's JIT-built op where training keeps it: built once per environment, not
        # rebuilt over another environment's in the shared default folder (ZeRO-3 presets)
        "TORCH_EXTENSIONS_DIR": paths.torch_extensions_dir(),
    }


def _worker(args: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    """Run the worker script (always the working tree's) and read its JSON result."""
    with tempfile.TemporaryDirectory(prefix="repro-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-P", str(WORKER), *[a.replace("{tmp}", tmp) for a in args], str(out)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0 or not out.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ReproError(f"benchmark {what} failed: {last}")
        return json.loads(out.read_text())


def _contender(preset: Preset, job: Job, tree: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="repro-bench-spec-") as tmp:
        spec = Path(tmp) / "spec.json"
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        spec.write_text(
            json.dumps({"preset": preset.spec(), "contender": job.contender, "workdir": str(workdir)})
        )
        where = "" if job.side == WORKING else f" on {job.side}"
        return _worker([str(spec)], _environment(tree), f"contender {job.contender}{where}")


def measure_peak(preset: Preset) -> dict[str, Any]:
    return _worker(["--peak", preset.dtype], _environment(paths.ROOT), "matrix-multiply peak")


def run(
    preset: Preset,
    *,
    rounds: int = 1,
    contenders: tuple[str, ...] | None = None,
    against: str | None = None,
    progress=None,
) -> dict:
    """Every contender in a fresh process, alternating (and interleaved with `against`'s);
    returns the report: medians, ratios, MFU, phases, and with `against` the changes."""
    chosen = contenders or preset.contenders
    check_device(preset)
    jobs = schedule(chosen, rounds, against)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    readings: list[dict[str, Any]] = []  # load averages around each contender, read here
    total = len(jobs) + 2
    here = revisions.working() if against else None  # before the runs: what they measured
    with revisions.checkout(against) if against else nullcontext() as other:
        trees = {WORKING: paths.ROOT} | ({against: other.path} if other else {})
        if progress:
            progress(0, total, "matrix-multiply peak")
        peaks = [measure_peak(preset)]
        for i, job in enumerate(jobs):
            if progress:
                progress(i + 1, total, job.contender + ("" if job.side == WORKING else f" @ {job.side}"))
            before = load.averages()
            measured = _contender(preset, job, trees[job.side])
            readings.append(
                {"contender": job.contender, "side": job.side, "before": before, "after": load.averages()}
            )
            measured["load_before"], measured["load_after"] = readings[-1]["before"], readings[-1]["after"]
            measured["round"] = job.round
            runs.setdefault(job.side, {}).setdefault(job.contender, []).append(measured)
        if progress:
            progress(total - 1, total, "matrix-multiply peak")
        peaks.append(measure_peak(preset))
    if progress:
        progress(total, total, "")
    out = report(preset, runs[WORKING], readings, peaks)
    if against:
        assert other is not None
        out["against"] = {
            "revision": against,
            "commit": other.commit,
            "working": here,
            "results": summarize(
                preset, runs[against], peak_flops(peaks), peak_flops(peaks, "flops_per_cpu_second")
            ),
        }
        out["changes"] = changes(runs[WORKING], runs[against])
    return out


# ---------------------------------------------------------------------------- the report


def peak_flops(peaks: list[dict[str, Any]], key: str = "flops") -> float | None:
    """The higher of the two measurements: load only ever lowers it."""
    return max((p[key] for p in peaks if p.get(key)), default=None)


def summarize(
    preset: Preset,
    runs: dict[str, list[dict[str, Any]]],
    peak: float | None,
    peak_per_cpu_second: float | None = None,
) -> dict[str, Any]:
    """Per contender: medians over rounds with their spread, model FLOP/s and MFU, phases.

    `mfu_cpu_time`: model FLOPs per CPU second over the peak's FLOPs per CPU second: with one
    thread (OMP_NUM_THREADS=1) what a core achieves however busy the machine; with more it
    also counts threads spinning at barriers, which rises with the load."""
    flops = train_worker.model_flops(preset.spec(), train_worker.workload_pairs(preset.spec()))
    per_step = sum(flops.values())
    results = {}
    for name, items in runs.items():
        tps = stats.spread([r["tokens_per_second"] for r in items])
        mem = stats.spread([r["peak_memory_bytes"] for r in items])
        step = stats.spread([r["step_seconds"] for r in items])
        cpu = stats.spread([r["cpu_seconds_per_step"] for r in items if "cpu_seconds_per_step" in r] or [0.0])
        first = items[0]
        result = {
            **{k: first[k] for k in ("contender", "peak_memory_kind", "steps_timed", "engine") if k in first},
            **{k: first[k] for k in ("zero_stage", "gpu", "threads", "repro_path") if k in first},
            "rounds": len(items),
            "tokens_per_step": first["tokens_per_step"],
            "tokens_per_second": tps["median"],
            "tokens_per_second_spread": tps,
            "step_seconds": step["median"],
            "step_seconds_spread": step,
            "cpu_seconds_per_step": cpu["median"],
            "cpu_seconds_per_step_spread": cpu,
            "peak_memory_bytes": mem["median"],
            "peak_memory_spread": mem,
            "model_flops_per_step": flops,
            "model_flops_per_second": per_step / step["median"],
            "load_before": first.get("load_before"),
            "load_after": items[-1].get("load_after"),
            "phases": _phases([r.get("phases") or {} for r in items]),
            "memory_peaks": _phases([r.get("memory_peaks") or {} for r in items]),
        }
        if peak:
            result["mfu"] = result["model_flops_per_second"] / peak
        if peak_per_cpu_second and cpu["median"] > 0:
            result["mfu_cpu_time"] = per_step / cpu["median"] / peak_per_cpu_second
        if "gpu" in first:
            datasheet = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in first["gpu"]), None)
            if datasheet and preset.dtype == "bfloat16":
                result["mfu_datasheet"] = result["model_flops_per_second"] / (datasheet * 1e12)
        results[name] = result
    return results


def _phases(per_round: list[dict[str, float]]) -> dict[str, float]:
    names = {k for p in per_round for k in p}
    return {n: stats.spread([p[n] for p in per_round if n in p])["median"] for n in sorted(names)}


def report(
    preset: Preset,
    runs: dict[str, list[dict[str, Any]]],
    readings: list[dict[str, Any]] | None = None,
    peaks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    peak = peak_flops(peaks or [])
    results = summarize(preset, runs, peak, peak_flops(peaks or [], "flops_per_cpu_second"))
    ratios = []
    for label, a, b in RATIOS:
        if a in results and b in results:
            ra, rb = results[a], results[b]
            ratios.append(
                {
                    "comparison": label,
                    "a": a,
                    "b": b,
                    "throughput_ratio": ra["tokens_per_second"] / rb["tokens_per_second"],
                    "memory_ratio": ra["peak_memory_bytes"] / rb["peak_memory_bytes"],
                }
            )
    return {
        "preset": preset.name,
        "description": preset.description,
        "machine": machine(),
        "load": load.summary(readings or []),
        "matmul_peak": {
            "flops": peak,
            "flops_per_cpu_second": peak_flops(peaks or [], "flops_per_cpu_second"),
            "measurements": peaks or [],
        },
        "results": results,
        "ratios": ratios,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def changes(
    working: dict[str, list[dict[str, Any]]], other: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Per contender, working / other on tokens/s and peak memory, paired by round."""
    out = []
    for name, items in working.items():
        theirs = {r["round"]: r for r in other.get(name, [])}
        mine = [r for r in items if r["round"] in theirs]
        if not mine:
            continue
        for metric, up, down in (
            ("tokens_per_second", "faster", "slower"),
            ("cpu_seconds_per_step", "more CPU time", "less CPU time"),
            ("peak_memory_bytes", "more memory", "less memory"),
        ):
            change = stats.paired_change(
                [r[metric] for r in mine], [theirs[r["round"]][metric] for r in mine]
            )
            change["verdict"] = stats.verdict(change, up, down)
            out.append({"contender": name, "metric": metric, **change})
    return out


def machine() -> dict[str, Any]:
    import platform

    # deferred: torch takes about 2 s to import
    import torch

    from repro.train import head_tiles

    info = {
        "cpu": head_tiles.machine_key(torch.device("cpu")).split("|")[1],
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info

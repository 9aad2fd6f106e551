"""`repro eval`'s library side: evaluate a checkpoint (no training) under a setting's templates
and decoding, and write OUTPUT/result.json."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from repro import hub
from repro.config.settings import get_setting
from repro.data import bosguard
from repro.errors import ReproError
from repro.evaluation import benchmarks, generation, runner
from repro.evaluation.eval_options import EvalOptions
from repro.evaluation.judge.spec import Judge
from repro.progress import Progress
from repro.runs.pipeline import preflight
from repro.runs.results import manifest
from repro.runs.results.result import FILE, RunResult


def _refuse_others_work(output: Path, model: str) -> None:
    """`--output` may be this model's earlier evaluation (evaluated again), never a `repro run`
    folder (a finished run is never altered) nor another model's result, whose answers and
    scores the evaluation would overwrite."""
    if (output / manifest.FILE).exists():
        raise ReproError(f"{output} holds a repro run (manifest.json): evaluate into another --output")
    if not (output / FILE).exists():
        return
    try:
        earlier = RunResult.read(output / FILE).model
    except ReproError:
        earlier = None  # unreadable: nothing in it can be lost
    if earlier is not None and not _same_model(earlier, model):
        raise ReproError(f"{output} holds the result of another model ({earlier}): choose another --output")


def _same_model(a: str, b: str) -> bool:
    """Two names of one model: the same folder however it is written, or the same hub id."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.resolve() == pb.resolve() if pa.exists() and pb.exists() else a == b


def evaluate(
    model: str,
    setting: str,
    *,
    output: Path,
    bench: str | None,
    judge: Judge,
    options: EvalOptions,
    revision: str | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Check what can fail before any model loads (benchmarks, engine, output folder, judge),
    evaluate, refuse a failed BOS check unless allowed, and write the result. `revision`: a hub
    model's branch, tag or commit (default: main)."""
    _refuse_others_work(output, model)
    target = runner.Target.of_setting(get_setting(setting))
    benches = benchmarks.parse(bench, target.plan)
    generation.check_backend(options.backend)  # an unknown engine is a usage error, as for repro run
    checks = [preflight.writable(output, "--output"), preflight.cache()]
    given = [(model, "model", "MODEL"), (options.reference_model, "reference model", "--reference-model")]
    for name, what, option in given:
        if name and (found := preflight.local_model(name, what, option)) is not None:
            checks.append(found)
    if benchmarks.judged(benches):
        checks += [preflight.cache(Path(judge.cache).parent, "--judge-cache"), preflight.judge_check(judge)]
    preflight.require_all(checks)
    target.check_reference(benches, options)  # before a hub model downloads or any loads
    # a hub id: the commit `main` (or --revision) is at now, loaded from its folder and recorded,
    # so answers kept from an evaluation of another commit are not taken for this one's
    loaded = hub.pinned(model, revision)
    name = model.split("/")[-1] if loaded.commit else None
    # the baseline model too (--reference-model, an init-model setting's): pinned once, loaded
    # from that folder and, where a benchmark scored against its answers, recorded
    baseline = hub.pinned(options.reference_model) if options.reference_model else None
    if baseline:
        options = dataclasses.replace(options, reference_model=baseline.folder)
    ev = runner.Evaluation(
        loaded.folder, target, output=output, judge=judge, benches=benches, options=options, name=name
    )
    if ev.bos_check.status == "error" and not options.allow_double_bos:
        raise ReproError(f"BOS check failed for {model}: {bosguard.FIX} (or pass --allow-double-bos)")
    evaluation = ev.run(progress=progress)
    # not where no benchmark scored against its answers (a published baseline; MT-Bench alone)
    against = baseline if ev.baseline_answered else None
    result = RunResult.of(
        evaluation,
        model=model,
        model_commit=loaded.commit,
        baseline_model=against.name if against else None,
        baseline_commit=against.commit if against else None,
    )
    result.write(output / FILE)
    return result

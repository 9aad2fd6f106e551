"""`repro eval`: generate with a setting's templates and decoding, judge, score, for every
registered benchmark (repro.evaluation.benchmarks: AlpacaEval 2, Arena-Hard v0.1, MT-Bench,
ZeroEval's GSM and MMLU-Redux, and any loaded with --bench-path). Every judge call goes through
one local gateway and one cache.

Generation (`repro.evaluation.answering`) runs on transformers, a vLLM engine or an
OpenAI-compatible server, writes each answer as it completes and resumes a killed run.
Arena-Hard and MT-Bench prompts use the setting's served chat template (the SimPO authors'
`--chat-template` file, `repro.data.served_templates`), not the checkpoint's own."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import hub, paths
from repro.config import evalconfig
from repro.config.resolution import evaluation_plan
from repro.config.runconfig import EvalPlan
from repro.data import bosguard
from repro.errors import ReproError
from repro.evaluation import answering, benchmarks, generation
from repro.evaluation.eval_options import EvalOptions
from repro.evaluation.generation.decoding import Decoding
from repro.evaluation.judge import client, identity
from repro.evaluation.judge.cache import JudgmentCache
from repro.evaluation.judge.gateway import serve
from repro.evaluation.judge.spec import Judge
from repro.evaluation.records import BenchmarkResult, EvaluationResult
from repro.progress import Progress

SMALL_MODEL_PARAMETERS = 20_000_000  # below this, transformers generates on one CPU thread


@dataclass(frozen=True)
class Target:
    """What is evaluated as: the setting's name, its evaluation plan, and the recipe (a RunConfig
    or a Setting) whose training format the BOS guard checks the prompts against."""

    name: str
    plan: EvalPlan
    recipe: Any

    @classmethod
    def of_run(cls, config: Any) -> Target:
        return cls(config.setting, config.evaluation, config)

    @classmethod
    def of_setting(cls, setting: Any) -> Target:
        return cls(setting.name, evaluation_plan(setting), setting)

    def check_reference(self, benches: list[str], options: EvalOptions) -> None:
        """A setting judged against its starting model's answers needs that model: without
        --reference-model, one line before any model loads or any judge is asked."""
        judging = options.stage != "generate" and bool(benchmarks.judged(benches))
        if self.plan.baseline == "init-model" and not options.reference_model and judging:
            raise ReproError(
                f"setting '{self.name}' compares against its starting model: pass --reference-model PATH"
            )


@dataclass
class _JudgeAccess:
    """The judge as a benchmark sees it (repro.evaluation.benchmarks.base.JudgeAccess)."""

    backend: Any
    base_url: str
    spec: Judge

    @property
    def cache(self) -> Path:
        return self.spec.cache

    @property
    def concurrency(self) -> int:
        return self.spec.concurrency

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def model(self) -> str | None:
        return self.spec.model

    @property
    def refresh(self) -> bool:
        return self.spec.refresh

    def chat(self, model: str, temperature: float, max_tokens: int, *, expect: str | None = None):
        return client.chat_function(
            self.base_url, model, temperature=temperature, max_tokens=max_tokens, expect=expect
        )


def _has_rule(bench: benchmarks.Benchmark) -> bool:
    return type(bench).rule is not benchmarks.Benchmark.rule


class _OnDemand:
    """A generation engine that loads its model at the first answer it must generate: a judging
    job finds every answer on disk and never holds the model (no GPU, little memory)."""

    def __init__(self, name: str, model_path: str, tokenizer):
        self.name, self.model_path, self.tokenizer = name, model_path, tokenizer
        self.fingerprint = answering.fingerprint(model_path)
        self._engine = None

    def __getattr__(self, attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        if self._engine is None:
            self._engine = generation.backend(self.name, self.model_path, tokenizer=self.tokenizer)
            self._engine.fingerprint = self.fingerprint
        return getattr(self._engine, attr)


def _engine(name: str, model_path: str, tokenizer, *, lazy: bool):
    if lazy:
        return _OnDemand(name, model_path, tokenizer)
    engine = generation.backend(name, model_path, tokenizer=tokenizer)
    engine.fingerprint = answering.fingerprint(model_path)
    return engine


def question_set(questions: str) -> Path | None:
    """The folder of the question set an evaluation plan names: `repro:NAME` is eval/questions/NAME/,
    bundled with repro; `benchmark` (None): each benchmark's own questions."""
    if questions == "benchmark":
        return None
    folder = paths.EVAL / "questions" / questions.removeprefix("repro:")
    if not folder.is_dir():
        raise ReproError(f"question set '{questions}': no folder {folder}")
    return folder


class Evaluation:
    """One evaluation of one model: the context every benchmark runs in, and the loop over them."""

    def __init__(
        self,
        model_path: str,
        target: Target,
        *,
        output: Path,
        judge: Judge,
        benches: list[str],
        options: EvalOptions | None = None,
        earlier: list[Path] | None = None,
        name: str | None = None,
    ):
        """`earlier`: output folders of earlier evaluations of the same model, whose answer files
        serve this one where they were generated the same way (repro.runs.pipeline.evaluations).
        `name`: the model's name in answers and scores (default: its folder's, or a hub id's last
        part; a hub commit's folder is named by the commit, so its caller names it)."""
        from transformers.utils import logging as hf_logging  # deferred: transformers is heavy

        from repro.data import served_templates, tokenizers

        hf_logging.disable_progress_bar()  # one line per error; the CLI reports progress itself
        options = options or EvalOptions()
        self.options, self.stage, self.limit = options, options.stage, options.limit
        self.max_new_tokens = options.max_new_tokens
        self.target, self.name, self.plan = target, target.name, target.plan
        self.benches = [benchmarks.get(b).name for b in benches]
        target.check_reference(self.benches, options)
        self.config = copy.deepcopy(self.plan.generation_file.data)  # a benchmark's to change
        # before any model loads: a missing judge or key fails fast (ZeroEval needs no judge)
        judged = benchmarks.judged(self.benches)
        self.needs_judge = self.stage != "generate" and bool(judged)
        self.backend = judge.backend() if self.needs_judge else None
        if judge.kind == "rule" and self.backend is not None:  # judged plugins' own rules
            sources = benchmarks.sources(judged)
            self.backend.rules = {
                b: (benchmarks.get(b).rule, sources.get(b)) for b in judged if _has_rule(benchmarks.get(b))
            }
        # who judges, asked before any model loads or judge call is paid for (one line if wrong)
        said = None
        if self.needs_judge and judge.kind == "endpoint":
            asked = {b: judge.model or benchmarks.get(b).published_judge for b in judged}
            said = identity.probe(judge.url, asked=asked, key_env=judge.key_env)
            self.backend.learn(said)  # the cache knows the judge by what it said
        self.judged_by = judge.judged_by(said)
        self.chat_template = options.chat_template or self.config["arena_hard"].get(
            "chat_template", "tokenizer"
        )
        if self.chat_template != "tokenizer":
            served_templates.lookup(self.chat_template)  # an unknown name fails fast too
        self.output = output
        self.judge = judge
        self.questions = question_set(self.plan.questions)
        self.tokenizer = tokenizers.load(options.tokenizer or model_path)
        self.family, family_note = self._family()
        if evalconfig.uses_family_stops(self.config):  # else a checkpoint of another family
            self.config = evalconfig.with_family_stops(self.config, self.family.stop_ids(self.tokenizer))
        self.model_name = name or (
            Path(model_path).name if Path(model_path).exists() else model_path.split("/")[-1]
        )
        self.answerer = answering.Answerer(
            output, allow_double_bos=options.allow_double_bos, earlier=earlier or []
        )
        lazy = self.stage == "judge"
        if options.server:  # the evaluated model comes from the server; a tiny reference model stays local
            from repro.evaluation.generation.server_backend import ServerBackend

            self.generator = ServerBackend(
                options.server, tokenizer=self.tokenizer, key_env=options.server_key_env
            )
        else:
            self.generator = _engine(options.backend, model_path, self.tokenizer, lazy=lazy)
        self.reference_generator = None
        self.baseline_answered = False  # whether a benchmark scored against the baseline model's answers
        if options.reference_model:  # a hub id: its commit's folder, so answers key by its weights
            reference = hub.pinned(options.reference_model).folder
            reference_tokenizer = tokenizers.load(options.tokenizer or reference)
            self.reference_generator = _engine(options.backend, reference, reference_tokenizer, lazy=lazy)
        self.timings: dict[str, float] = {}
        # seconds by stage over every benchmark: generating answers, judging (the gateway's
        # start and every judge call; for AlpacaEval, alpaca-eval's whole evaluate(), which
        # also computes its win rate), scoring (Arena-Hard's bootstrap, MT-Bench, ZeroEval)
        self.stage_seconds: dict[str, float] = {"generate": 0.0, "judge": 0.0, "score": 0.0}
        self.notes: list[str] = [family_note] if family_note else []
        # whether --limit left questions out, by benchmark (`subset`); a benchmark that never
        # said how many it has counts as cut: its result is partial
        self.limit_cut: dict[str, bool] = {}
        self.running: str | None = None  # the benchmark whose `run` is under way
        self.bos_check = self._bos_check()

    # -------------------------------------------------------------- what a benchmark uses

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[stage] = round(self.stage_seconds[stage] + time.perf_counter() - start, 3)

    def folder(self, benchmark: str) -> Path:
        return self.output / benchmark

    def note(self, text: str) -> None:
        self.notes.append(text)

    def question_set(self, entry: str) -> Path | None:
        """The setting's own question set's `entry` (eval/questions/SET/ENTRY, in the layout of
        the benchmark's data option), or None: the setting uses each benchmark's own questions."""
        return self.questions / entry if self.questions else None

    def shared_data(self, relative: str) -> Path | None:
        """A file or folder under shared/data, when shared/ is there."""
        shared = paths.shared_dir()
        return shared / "data" / relative if shared else None

    @property
    def baseline(self) -> str:
        """`published` (each benchmark's reference answers) or `init-model` (the starting model's)."""
        return self.plan.baseline

    def subset(self, section: str, available: int | None = None) -> int | None:
        """How many of a benchmark's questions this evaluation answers: the setting's own subset
        (`questions: N` in its generation config's section), cut further by --limit. `available`:
        how many questions the benchmark has, so that the result is partial only where --limit
        left some out (without it, and without a subset of the setting's, --limit counts as cutting)."""
        own = (self.config.get(section) or {}).get("questions")
        if self.limit is not None and self.running is not None:
            whole = [n for n in (own, available) if n is not None]
            cut = not whole or min(whole) > self.limit
            self.limit_cut[self.running] = self.limit_cut.get(self.running, False) or cut
        sizes = [n for n in (own, self.limit) if n is not None]
        return min(sizes) if sizes else None

    def heldout_instructions(self) -> list[str]:
        """The AlpacaEval instructions a setting that trains on AlpacaEval annotations holds out
        (repro.data.alpaca_preferences): never trained on, so they can be evaluated on."""
        from repro.data import alpaca_preferences  # deferred: only smol-like settings need it

        options = dict(getattr(self.target.recipe, "dataset_options", None) or {})
        source = options.pop("source", None)
        options.pop("sources_sha256", None)
        folder = Path(source) if source else alpaca_preferences.default_source()
        if not folder:
            raise ReproError(
                f"{self.name}: its AlpacaEval instructions are its data's held-out ones: pass --data DIR"
            )
        return alpaca_preferences.heldout_from(folder, alpaca_preferences.Binarization(**options))

    def generator_fingerprint(self) -> str | None:
        return getattr(self.generator, "fingerprint", None)

    def answer(
        self,
        benchmark: str,
        prompts: list[str],
        decoding: Decoding,
        *,
        reference: bool = False,
        add_special_tokens: bool | list[bool] = True,
        expected_bos: int = 1,
        what: str | None = None,
    ) -> list[str]:
        """The model's (or with `reference`, the baseline model's) answers, one per prompt: read
        from BENCHMARK/[reference_]answers.jsonl where a killed run wrote them, the rest generated
        and written as they complete."""
        file = f"{benchmark}/{'reference_' if reference else ''}answers.jsonl"
        generator = self.reference_generator if reference else self.generator
        if generator is None:
            raise ReproError(f"{benchmark}: no baseline model to answer with: pass --reference-model PATH")
        self.baseline_answered = self.baseline_answered or reference
        with self.timed("generate"):
            return self.answerer.answers(
                file,
                generator,
                prompts,
                decoding,
                add_special_tokens=add_special_tokens,
                expected_bos=expected_bos,
                what=what or f"{benchmark} prompts",
            )

    def ask(
        self, benchmark: str, questions: list[str], decoding: Decoding, *, reference: bool = False
    ) -> list[str]:
        """Answers to single-turn questions, each put through the chat template (`chat_prompt`)."""
        rendered = [self.chat_prompt(q) for q in questions]
        prompts, flags = [p for p, _ in rendered], [f for _, f in rendered]
        return self.answer(benchmark, prompts, decoding, reference=reference, add_special_tokens=flags)

    def chat_prompt(self, messages: list[dict[str, str]] | str) -> tuple[str, bool]:
        """A chat prompt with the served template ("tokenizer": the checkpoint's own) and whether
        the tokenizer should add special tokens to it; a string is one user turn."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if self.chat_template == "tokenizer":
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            # a template that writes the BOS itself goes in without special tokens (no second BOS)
            return text, not self.family.template_writes_bos
        return answering.chat_prompt(self.tokenizer, self.chat_template, messages)

    def _family(self) -> tuple[Any, str | None]:
        """The model family generation follows: the setting's, unless this checkpoint's tokenizer
        contradicts it (a checkpoint evaluated under another setting: its own tokenizer's
        conventions, said in a note), or the one its tokenizer shows when the setting names none.
        Training refuses a contradiction (repro.data.bosguard); an evaluation of any checkpoint
        under any setting is allowed, as it always was."""
        from repro.data import family, preference

        declared = getattr(self.target.recipe, "family", None)
        if declared is None:
            return family.infer(self.tokenizer), None
        preference.Pipeline.for_config(self.tokenizer, self.target.recipe)  # installs its chat template
        found = family.contradictions(declared, self.tokenizer)
        if not found:
            return declared, None
        note = (
            f"the setting's model family '{declared.name}' does not describe this checkpoint's "
            f"tokenizer ({'; '.join(found)}): generation follows the tokenizer's own"
        )
        return family.infer(self.tokenizer), note

    def _bos_check(self) -> bosguard.Report:
        """The BOS guard on the generation prompts (and the setting's training format)."""
        from repro.data import preference

        recipe = self.target.recipe
        if getattr(recipe, "family", None) not in (None, self.family):
            recipe = dataclasses.replace(recipe, family=self.family)
        pipeline = preference.Pipeline.for_config(self.tokenizer, recipe)
        return bosguard.Report.of(bosguard.run(self.tokenizer, pipeline, self.config))

    @contextlib.contextmanager
    def _cpu_threads(self) -> Iterator[None]:
        """One CPU thread while a small model generates on transformers: OpenMP's per-op
        synchronisation costs more than a tiny model's matmuls (the tiny loop's evaluation:
        17 s instead of 30 s on 2 shared cores, 9 s of CPU instead of 15, the same answers).
        The process's thread count is restored afterwards."""
        import torch  # deferred: torch takes seconds to import

        models = [getattr(g, "model", None) for g in (self.generator, self.reference_generator)]
        # transformers backends hold a torch module; a server backend's `model` is its name
        params = [sum(p.numel() for p in m.parameters()) for m in models if isinstance(m, torch.nn.Module)]
        small = params and max(params) < SMALL_MODEL_PARAMETERS
        if not small or torch.cuda.is_available() or self.options.backend != "transformers":
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    # -------------------------------------------------------------------- the loop

    def run(self, progress: Progress | None = None) -> EvaluationResult:
        with self._cpu_threads():
            outputs, judge_calls = self._run(progress)
        # partial only where --limit left questions out of some benchmark
        cut = self.limit is not None and any(self.limit_cut.get(name, True) for name in outputs)
        if self.limit is not None and not cut:
            self.notes.append(f"--limit {self.limit} left no question out: no benchmark has more")
        return EvaluationResult(
            model=self.model_name,
            setting=self.name,
            benchmarks={
                name: BenchmarkResult(name, output, self.timings.get(name))
                for name, output in outputs.items()
            },
            scores=benchmarks.scores(outputs),
            judge=self.judged_by,
            limit=self.limit if cut else None,
            stage=self.stage,
            judge_calls=judge_calls,
            resumed_answers=self.answerer.resumed or None,
            notes=list(self.notes),
            bos_check=self.bos_check,
            timings_seconds=dict(self.timings),
            stage_seconds=dict(self.stage_seconds),
        )

    def _one(self, name: str, judge: _JudgeAccess | None) -> dict[str, Any]:
        """One benchmark's output. A plugin's own error, or scores it does not declare, is one
        line naming its file, before the next benchmark starts (its answers stay on disk)."""
        start = time.time()
        self.running = name
        try:
            output = benchmarks.get(name).run(self, judge)
        except ReproError:
            raise
        except Exception as exc:
            if not benchmarks.is_plugin(name):
                raise
            where = benchmarks.source_file(name)
            raise ReproError(f"{where}: benchmark '{name}' failed: {type(exc).__name__}: {exc}") from None
        finally:
            self.running = None
            self.timings[name] = round(time.time() - start, 2)
        if not isinstance(output, dict):
            raise ReproError(f"{benchmarks.source_file(name)}: benchmark '{name}' run() returned no mapping")
        if judge is not None or not benchmarks.get(name).judged:  # a scored output, not answers only
            benchmarks.scores_of(name, output)
        return output

    def _run(self, progress: Progress | None) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
        outputs: dict[str, dict[str, Any]] = {}
        judged = benchmarks.judged(self.benches)
        for name in [b for b in self.benches if b not in judged]:  # no judge, no gateway
            outputs[name] = self._one(name, None)
        if self.stage == "generate" or not judged:  # answers only: no judge, no gateway, no scores
            for name in judged:
                outputs[name] = self._one(name, None)
            return outputs, None
        with ExitStack() as stack:
            with self.timed("judge"):  # the gateway's start
                backend = self.backend or self.judge.backend()
                cache = JudgmentCache(self.judge.cache)
                stack.callback(cache.close)
                base_url, gateway = stack.enter_context(serve(backend, cache, refresh=self.judge.refresh))
            access = _JudgeAccess(backend, base_url, self.judge)
            for done, name in enumerate(judged):
                if progress:
                    progress("evaluation (judged benchmarks)", done, len(judged))
                outputs[name] = self._one(name, access)
            if progress:
                progress("evaluation (judged benchmarks)", len(judged), len(judged))
            return outputs, gateway.stats.as_dict()

"""`repro eval`: generate with a setting's templates and decoding, judge, score: AlpacaEval 2,
Arena-Hard v0.1 and MT-Bench (every judge call through one local gateway and one cache), and
ZeroEval's GSM and MMLU-Redux (no judge: repro.evaluation.zeroeval).

Generation (`repro.evaluation.answering`) runs on transformers, a vLLM engine or an
OpenAI-compatible server, writes each answer as it completes and resumes a killed run.
Arena-Hard and MT-Bench prompts use the setting's served chat template (the SimPO authors'
`--chat-template` file, `repro.data.served_templates`), not the checkpoint's own."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from repro import io, paths, tiny
from repro.config import evalconfig
from repro.config.runconfig import EvalPlan, RunConfig
from repro.config.settings import Setting
from repro.errors import ReproError
from repro.evaluation.generate import Decoding
from repro.evaluation.judge import backends, client
from repro.evaluation.judge.cache import JudgmentCache
from repro.evaluation.judge.gateway import serve
from repro.evaluation.scorers import alpaca_eval, arena_hard, mt_bench
from repro.progress import Progress

BENCHES = ("alpaca_eval2", "arena_hard", "mt_bench", "gsm", "mmlu_redux")
STAGES = ("all", "generate", "judge")
JUDGED = ("alpaca_eval2", "arena_hard", "mt_bench")
SMALL_MODEL_PARAMETERS = 20_000_000  # below this, transformers generates on one CPU thread
# FastChat's per-category temperatures for MT-Bench answers (greedy below 1e-4)
MT_TEMPERATURE = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}


def parse_benches(text: str | None, plan: EvalPlan) -> list[str]:
    """--bench A,B (checked before any work starts), or the setting's default benchmarks."""
    from repro.errors import unknown

    if text is None:
        return evalconfig.default_benches(plan.generation)
    benches = [b.strip() for b in text.split(",") if b.strip()]
    for bench in benches:
        if bench not in BENCHES:
            raise unknown("benchmark", bench, BENCHES)
    if not benches:
        raise ReproError("--bench names no benchmark")
    return benches


@dataclass
class Judge:
    """Where judgments come from: an OpenAI-compatible endpoint, or `rule` (the local rule judge)."""

    kind: str = "endpoint"  # endpoint | rule
    url: str | None = None
    model: str | None = None  # None: each benchmark's own judge (gpt-4-1106-preview, gpt-4)
    key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    cache: Path = field(
        default_factory=lambda: (
            Path(os.environ.get("REPRO_CACHE", Path.home() / ".cache" / "repro")) / "judgments.sqlite"
        )
    )

    KINDS = ("endpoint", "rule")

    @classmethod
    def choose(cls, kind: str | None, plan: EvalPlan, **kwargs: Any) -> Judge:
        """The judge a command asked for; without a choice: an endpoint when a URL is given, else
        the recipe's judge (an endpoint then asks for its URL)."""
        kind = kind or ("endpoint" if kwargs.get("url") else plan.judge)
        if kind not in cls.KINDS:
            from repro.errors import unknown

            raise unknown("judge", kind, cls.KINDS)
        if kind == "endpoint" and kwargs.get("url") and (problem := backends.url_problem(kwargs["url"])):
            from repro.errors import UsageError

            raise UsageError(problem)
        return cls(kind=kind, **{k: v for k, v in kwargs.items() if v is not None})

    def backend(self):
        if self.kind == "rule":
            return backends.RuleJudge()
        if not self.url:
            raise ReproError("no judge: pass --judge-url URL (an OpenAI-compatible endpoint) or --judge rule")
        from repro.evaluation.judge import identity

        return backends.OpenAIEndpoint(
            self.url,
            model=self.model,
            api_key_env=self.key_env,
            max_concurrency=self.concurrency,
            require_key=not identity.is_local(self.url),  # a server you run yourself needs no key
        )

    def describe(self) -> dict[str, Any]:  # what goes into results: never the key itself
        return {"kind": self.kind, "url": self.url, "model": self.model, "key_env": self.key_env}


class _OnDemand:
    """A generation engine that loads its model at the first answer it must generate: a judging
    job finds every answer on disk and never holds the model (no GPU, little memory)."""

    def __init__(self, name: str, model_path: str, tokenizer):
        from repro.evaluation import answering

        self.name, self.model_path, self.tokenizer = name, model_path, tokenizer
        self.fingerprint = answering.fingerprint(model_path)
        self._engine = None

    def __getattr__(self, attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        if self._engine is None:
            from repro.evaluation import generate

            self._engine = generate.backend(self.name, self.model_path, tokenizer=self.tokenizer)
            self._engine.fingerprint = self.fingerprint
        return getattr(self._engine, attr)


def _engine(name: str, model_path: str, tokenizer, *, lazy: bool):
    from repro.evaluation import answering, generate

    if lazy:
        return _OnDemand(name, model_path, tokenizer)
    engine = generate.backend(name, model_path, tokenizer=tokenizer)
    engine.fingerprint = answering.fingerprint(model_path)
    return engine


def _fill(template: str, instruction: str) -> str:
    return template.replace("{instruction}", instruction)  # not str.format: instructions hold braces


def _chat_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


class Evaluation:
    def __init__(
        self,
        model_path: str,
        setting: Setting | RunConfig,
        *,
        output: Path,
        judge: Judge,
        backend_name: str = "transformers",
        tokenizer: str | None = None,
        limit: int | None = None,
        reference_model: str | None = None,
        alpaca_reference: Path | None = None,
        arena_hard_data: Path | None = None,
        mt_bench_data: Path | None = None,
        lc_data: Path | None = None,
        max_new_tokens: int | None = None,
        benches: list[str] | None = None,
        zeroeval_data: Path | None = None,
        zeroeval_bos: str = "single",
        server: str | None = None,
        server_key_env: str | None = None,
        chat_template: str | None = None,
        allow_double_bos: bool = False,
        stage: str = "all",
    ):
        from transformers.utils import logging as hf_logging

        from repro.config.resolution import evaluation_plan
        from repro.data import served_templates, tokenizers
        from repro.evaluation import answering

        hf_logging.disable_progress_bar()  # one line per error; the CLI reports progress itself
        if stage not in STAGES:
            from repro.errors import unknown

            raise unknown("evaluation stage", stage, STAGES)
        # "generate": answers only (a GPU job); "judge": answers are expected on disk, so the
        # models load only if one is missing (a CPU job); "all": both, in one process.
        self.stage = stage

        self.setting = setting  # its training format is what the BOS guard checks
        if isinstance(setting, RunConfig):
            self.name, self.plan = setting.setting, setting.evaluation
        else:
            self.name, self.plan = setting.name, evaluation_plan(setting)
        self.config = evalconfig.generation(self.plan.generation)
        # before any model loads: a missing judge or key fails fast (ZeroEval needs no judge)
        self.needs_judge = stage != "generate" and (benches is None or any(b in JUDGED for b in benches))
        self.backend = judge.backend() if self.needs_judge else None
        # who judges, asked before any model loads or judge call is paid for (one line if wrong)
        self.judge_identity: dict[str, Any] = {}
        if self.needs_judge and judge.kind == "endpoint":
            from repro.evaluation.judge import identity

            judged = [b for b in (benches or evalconfig.default_benches(self.plan.generation)) if b in JUDGED]
            self.judge_identity = identity.probe(
                judge.url, model=judge.model, benches=judged, key_env=judge.key_env
            )
        self.backend_name = backend_name
        self.zeroeval_data = zeroeval_data
        self.zeroeval_bos = zeroeval_bos
        self.chat_template = chat_template or self.config["arena_hard"].get("chat_template", "tokenizer")
        if self.chat_template != "tokenizer":
            served_templates.lookup(self.chat_template)  # an unknown name fails fast too
        self.output = output
        self.judge = judge
        self.limit = limit
        self.lc_data = lc_data
        self.max_new_tokens = max_new_tokens
        self.toy_questions = self.plan.questions == "repro:tiny"
        shared = paths.shared_dir()
        data = shared / "data" if shared else None
        self.alpaca_reference = alpaca_reference or (
            data / "alpaca_eval" / "reference" / "gpt4_1106_preview.json" if data else None
        )
        self.arena_hard_data = arena_hard_data or (data / "arena_hard_v0.1" if data else None)
        self.mt_bench_data = mt_bench_data or (data / "mt_bench" if data else None)
        self.tokenizer = tokenizers.load(tokenizer or model_path)
        self.model_name = Path(model_path).name if Path(model_path).exists() else model_path.split("/")[-1]
        self.answerer = answering.Answerer(output, allow_double_bos=allow_double_bos)
        if server:  # the evaluated model comes from the server; a tiny reference model stays local
            from repro.evaluation.server import ServerBackend

            self.generator = ServerBackend(server, tokenizer=self.tokenizer, key_env=server_key_env)
        else:
            self.generator = _engine(backend_name, model_path, self.tokenizer, lazy=stage == "judge")
        self.reference_generator = None
        if reference_model:
            self.reference_generator = _engine(
                backend_name,
                reference_model,
                tokenizers.load(tokenizer or reference_model),
                lazy=stage == "judge",
            )
        if self.plan.baseline == "init-model" and self.reference_generator is None and self.needs_judge:
            raise ReproError(
                f"setting '{self.name}' compares against its starting model: pass --reference-model PATH"
            )
        self.timings: dict[str, float] = {}
        # seconds by stage over every benchmark: generating answers, judging (the gateway's
        # start and every judge call; for AlpacaEval, alpaca-eval's whole evaluate(), which
        # also computes its win rate), scoring (Arena-Hard's bootstrap, MT-Bench, ZeroEval)
        self.stage_seconds: dict[str, float] = {"generate": 0.0, "judge": 0.0, "score": 0.0}
        self.notes: list[str] = []
        self.bos_check = self._bos_check()

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[name] = round(self.stage_seconds[name] + time.perf_counter() - start, 3)

    def _bos_check(self) -> dict[str, Any]:
        """The BOS guard on the generation prompts (and the setting's training format)."""
        from repro.data import bosguard, preference

        pipeline = preference.Pipeline.for_config(self.tokenizer, self.setting)
        return bosguard.as_manifest(bosguard.run(self.tokenizer, pipeline, self.config))

    # -------------------------------------------------------------------- benchmarks

    def alpaca_eval2(self, backend) -> dict[str, Any]:
        cfg = self.config["alpaca_eval"]
        decoding = Decoding.alpaca_eval(cfg, max_new_tokens=self.max_new_tokens)
        if self.toy_questions:
            instructions = tiny.eval_instructions()[: self.limit]
            reference_outputs = None
        else:
            if not self.alpaca_reference or not Path(self.alpaca_reference).exists():
                raise ReproError("AlpacaEval reference outputs not found: pass --alpaca-reference FILE")
            reference_outputs = json.loads(Path(self.alpaca_reference).read_text())[: self.limit]
            instructions = [r["instruction"] for r in reference_outputs]
        prompts = [_fill(cfg["prompt_template"], i) for i in instructions]
        # strings with add_special_tokens, as alpaca-eval 0.6.2 gave them to vLLM
        expected = int(cfg.get("expected_bos", 1))
        answer = dict(add_special_tokens=True, expected_bos=expected, what="AlpacaEval prompts")
        with self._stage("generate"):
            outputs = self.answerer.answers(
                "alpaca_eval2/answers.jsonl", self.generator, prompts, decoding, **answer
            )
        model_outputs = [
            {"instruction": i, "output": o, "generator": self.model_name, "dataset": "repro"}
            for i, o in zip(instructions, outputs, strict=True)
        ]
        if reference_outputs is None:
            with self._stage("generate"):
                ref = self.answerer.answers(
                    "alpaca_eval2/reference_answers.jsonl",
                    self.reference_generator,
                    prompts,
                    decoding,
                    **answer,
                )
            reference_outputs = [
                {"instruction": i, "output": o, "generator": "reference", "dataset": "repro"}
                for i, o in zip(instructions, ref, strict=True)
            ]
        io.write_json(self.output / "alpaca_eval2" / "model_outputs.json", model_outputs)
        io.write_json(self.output / "alpaca_eval2" / "reference_outputs.json", reference_outputs)
        if self.stage == "generate":
            return {"answers": len(model_outputs)}
        with self._stage("judge"):
            result = alpaca_eval.evaluate(
                model_outputs,
                reference_outputs,
                backend,
                name=self.model_name,
                cache_path=self.judge.cache,
                lc_data=self.lc_data,
                # the rule judge answers in microseconds: alpaca-eval's pool of processes (one
                # fork per slot) would cost more than it saves; one slot runs in this process
                concurrency=1 if self.judge.kind == "rule" else self.judge.concurrency,
                judge_model=None,
                annotations_out=self.output / "alpaca_eval2" / "annotations.json",
            )
        result["decoding"] = decoding.__dict__
        return result

    def arena_hard(self, chat) -> dict[str, Any]:
        config = self._arena_hard_config()
        decoding = Decoding(
            mode="greedy",
            max_new_tokens=self.max_new_tokens or self.config["arena_hard"]["max_tokens"],
            stop_token_ids=self.config["arena_hard"].get("stop_token_ids"),
        )
        if self.toy_questions:
            questions = [
                {"question_id": f"tiny-{i:03d}", "turns": [{"content": q}]}
                for i, q in enumerate(tiny.eval_instructions()[: self.limit])
            ]
            baseline = None
        else:
            questions = arena_hard.read_jsonl(self.arena_hard_data / "question.jsonl")[: self.limit]
            baseline = {
                a["question_id"]: a for a in arena_hard.read_jsonl(self.arena_hard_data / "gpt-4-0314.jsonl")
            }
        rendered = [self._chat([{"role": "user", "content": q["turns"][0]["content"]}]) for q in questions]
        prompts, flags = [p for p, _ in rendered], [f for _, f in rendered]
        answer = dict(add_special_tokens=flags, what="Arena-Hard prompts")
        with self._stage("generate"):
            texts = self.answerer.answers(
                "arena_hard/answers.jsonl", self.generator, prompts, decoding, **answer
            )
        answers = self._answers(questions, texts, self.model_name)
        if baseline is None:
            with self._stage("generate"):
                texts = self.answerer.answers(
                    "arena_hard/reference_answers.jsonl",
                    self.reference_generator,
                    prompts,
                    decoding,
                    **answer,
                )
            baseline = self._answers(questions, texts, arena_hard.BASELINE)
        io.write_json(self.output / "arena_hard" / "answers.json", list(answers.values()))
        if self.stage == "generate":
            return {"answers": len(answers)}
        with self._stage("judge"):
            judgments = arena_hard.judge(
                chat(config["judge_model"], config["temperature"], config["max_tokens"]),
                config,
                questions,
                answers,
                baseline,
                concurrency=self.judge.concurrency,
            )
        (self.output / "arena_hard").mkdir(parents=True, exist_ok=True)
        with open(self.output / "arena_hard" / "judgments.jsonl", "w", encoding="utf-8") as fh:
            for row in judgments:
                fh.write(io.dumps(row, indent=None) + "\n")
        failed = sum(1 for j in judgments for g in j["games"] if g.get("score") is None)
        with self._stage("score"):
            battles = arena_hard.battles_from_judgments({self.model_name: judgments})
            if len(battles.outcome):
                scores = arena_hard.score(battles)[self.model_name]
            else:  # no verdict in any game (a judge that cannot follow the format): counted, no score
                scores = {"score": None, "lower": None, "upper": None, "battles": 0}
                scores["games_without_verdict"] = failed
                self.notes.append(f"arena_hard: none of the {failed} games has a verdict: no score")
        return {
            **scores,
            "avg_tokens": self._tokens(list(answers.values())),
            "n_questions": len(judgments),
            "n_games_without_verdict": failed,
            "incomplete": failed > 0 or len(judgments) < len(questions),
        }

    def mt_bench(self, chat) -> dict[str, Any]:
        judge_model = self.judge.model or "gpt-4"
        if self.toy_questions:
            instructions = tiny.eval_instructions()[: self.limit]
            # "extraction": FastChat answers it greedily and grades it without a reference
            questions = [
                {"question_id": i, "category": "extraction", "turns": [q, "please tell me more ."]}
                for i, q in enumerate(instructions)
            ]
            prompts, references = tiny.TINY_MT_PROMPTS, {}
        else:
            if not self.mt_bench_data:
                raise ReproError(
                    "MT-Bench data not found: pass --mt-bench-data DIR (FastChat llm_judge/data layout)"
                )
            questions, prompts, references = mt_bench.load_data(
                self.mt_bench_data.parent
                if (self.mt_bench_data / "question.jsonl").exists()
                else self.mt_bench_data,
                judge_model,
            )
            questions = questions[: self.limit]
        with self._stage("generate"):
            turns = self.answerer.mt_bench_turns(
                self.generator,
                questions,
                self._chat,
                MT_TEMPERATURE,
                self.max_new_tokens or self.config.get("mt_bench", {}).get("max_new_tokens", 1024),
            )
        answers = {
            q["question_id"]: {
                "question_id": q["question_id"],
                "model_id": self.model_name,
                "choices": [{"index": 0, "turns": t}],
                "tstamp": time.time(),
            }
            for q, t in zip(questions, turns, strict=True)
        }
        io.write_json(self.output / "mt_bench" / "answers.json", list(answers.values()))
        if self.stage == "generate":
            return {"answers": len(answers)}
        with self._stage("judge"):
            judgments = mt_bench.judge(
                chat(judge_model, 0.0, 2048),
                prompts,
                questions,
                answers,
                references,
                judge_model,
                concurrency=self.judge.concurrency,
            )
        with open(self.output / "mt_bench" / "judgments.jsonl", "w", encoding="utf-8") as fh:
            for row in judgments:
                fh.write(io.dumps(row, indent=None) + "\n")
        with self._stage("score"):
            result = mt_bench.score(judgments)[self.model_name]
        result["judge_model"] = judge_model
        result["incomplete"] = result["n_dropped"] > 0
        return result

    def zeroeval(self, bench: str) -> dict[str, Any]:
        """ZeroEval GSM / MMLU-Redux: generate, write ZeroEval's result file, score it."""
        from repro.evaluation import zeroeval
        from repro.evaluation.scorers import zeroeval as scorer

        task = zeroeval.BENCHES[bench]
        if self.toy_questions:
            items = zeroeval.tiny_items(task)[: self.limit]
        else:
            items = zeroeval.load_items(task, data_dir=self.zeroeval_data, limit=self.limit)
        with self._stage("generate"):
            records, generation = zeroeval.generate(
                self.generator,
                self.tokenizer,
                task,
                items,
                model_name=self.model_name,
                engine=self.backend_name,
                # the generation config may cap ZeroEval's 4096 tokens (the tiny model has 256 positions)
                max_new_tokens=self.max_new_tokens or self.config.get("zeroeval", {}).get("max_new_tokens"),
                bos=self.zeroeval_bos,
            )
        with self._stage("score"):
            path = zeroeval.write_results(self.output / bench / f"{self.model_name}.json", records)
            score = scorer.score_items(records, task, model=self.model_name)
        if score.note:
            self.notes.append(f"{bench}: {score.note}")
        return {
            **score.as_dict(),
            "outputs": str(path),
            "data": "tiny synthetic arithmetic" if self.toy_questions else "ZeroEval items",
            "scoring": "ZeroEval 41d0bfd",
            **generation,
            "incomplete": False,
        }

    def _zeroeval_once(self, bench: str) -> dict[str, Any]:
        """ZeroEval needs no judge, so its generating job scores it; the judging job then takes
        that score (same model, same limit) instead of generating again on a CPU node."""
        record = self.output / bench / "scored-by-generation.json"
        identity = {"model": getattr(self.generator, "fingerprint", None), "limit": self.limit}
        stored = io.read_json(record)
        if stored and stored.get("identity") == identity and identity["model"]:
            return stored["result"]
        result = self.zeroeval(bench)
        if self.stage == "generate":
            io.write_json(record, {"identity": identity, "result": result})
        return result

    def _chat(self, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """A chat prompt with the served template ("tokenizer": the checkpoint's own)."""
        from repro.evaluation import answering

        if self.chat_template == "tokenizer":
            return _chat_prompt(self.tokenizer, messages), True
        return answering.chat_prompt(self.tokenizer, self.chat_template, messages)

    def _tokens(self, answers: list[dict]) -> int | None:
        """Average answer tokens (cl100k); None when the encoder is not available offline."""
        try:
            return arena_hard.answer_tokens(answers)
        except ReproError as exc:
            self.notes.append(f"Arena-Hard token lengths not computed: {exc}")
            return None

    def _answers(self, questions, texts, model_id) -> dict[str, dict]:
        return {
            q["question_id"]: {
                "question_id": q["question_id"],
                "answer_id": f"{model_id}-{q['question_id']}",
                "model_id": model_id,
                "choices": [{"index": 0, "turns": [{"content": t}]}],
                "tstamp": time.time(),
            }
            for q, t in zip(questions, texts, strict=True)
        }

    def _arena_hard_config(self) -> dict[str, Any]:
        path = paths.EVAL / "judges" / "arena-hard-v0.1.yaml"
        config = yaml.safe_load(path.read_text())
        if self.judge.model:
            config["judge_model"] = self.judge.model
        return config

    # -------------------------------------------------------------------- run

    @contextlib.contextmanager
    def _cpu_threads(self) -> Iterator[None]:
        """One CPU thread while a small model generates on transformers: OpenMP's per-op
        synchronisation costs more than a tiny model's matmuls (the tiny loop's evaluation:
        17 s instead of 30 s on 2 shared cores, 9 s of CPU instead of 15, the same answers).
        The process's thread count is restored afterwards."""
        import torch

        models = [getattr(g, "model", None) for g in (self.generator, self.reference_generator)]
        # transformers backends hold a torch module; a server backend's `model` is its name
        params = [sum(p.numel() for p in m.parameters()) for m in models if isinstance(m, torch.nn.Module)]
        small = params and max(params) < SMALL_MODEL_PARAMETERS
        if not small or torch.cuda.is_available() or self.backend_name != "transformers":
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def run(self, benches: list[str], progress: Progress | None = None) -> dict[str, Any]:
        with self._cpu_threads():
            return self._run(benches, progress)

    def _run(self, benches: list[str], progress: Progress | None = None) -> dict[str, Any]:
        for bench in benches:
            if bench not in BENCHES:
                from repro.errors import unknown

                raise unknown("benchmark", bench, BENCHES)
        results: dict[str, Any] = {}
        for bench in [b for b in benches if b not in JUDGED]:  # no judge, no gateway
            start = time.time()
            results[bench] = self._zeroeval_once(bench)
            self.timings[bench] = round(time.time() - start, 2)
        judged = [b for b in benches if b in JUDGED]
        if self.stage == "generate":  # answers only: no judge, no gateway, no scores
            for bench in judged:
                start = time.time()
                results[bench] = getattr(self, bench)(None)
                self.timings[bench] = round(time.time() - start, 2)
            return results
        if not judged:
            if self.notes:
                results["notes"] = self.notes
            return results
        with ExitStack() as stack:
            with self._stage("judge"):  # the gateway's start
                backend = self.backend or self.judge.backend()
                cache = JudgmentCache(self.judge.cache)
                stack.callback(cache.close)
                base_url, gateway = stack.enter_context(serve(backend, cache))

            def chat(model: str, temperature: float, max_tokens: int):
                return client.chat_function(base_url, model, temperature=temperature, max_tokens=max_tokens)

            for done, bench in enumerate(judged):
                if progress:
                    progress("evaluation (judged benchmarks)", done, len(judged))
                start = time.time()
                if bench == "alpaca_eval2":
                    results[bench] = self.alpaca_eval2(backend)
                elif bench == "arena_hard":
                    results[bench] = self.arena_hard(chat)
                else:
                    results[bench] = self.mt_bench(chat)
                self.timings[bench] = round(time.time() - start, 2)
            if progress:
                progress("evaluation (judged benchmarks)", len(judged), len(judged))
            results["judge_calls"] = gateway.stats.as_dict()
        if self.answerer.resumed:
            results["resumed_answers"] = self.answerer.resumed
        if self.notes:
            results["notes"] = self.notes
        return results

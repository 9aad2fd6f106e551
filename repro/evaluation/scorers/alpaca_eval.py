"""AlpacaEval 2 through alpaca-eval 0.6.2 itself (`weighted_alpaca_eval_gpt4_turbo`).

alpaca-eval builds the judge prompts, randomizes positions, calls the judge with its own
OpenAI client and parses the log-probs; repro points that client at the local judge
gateway (repro.evaluation.judge), always passes a local reference file and an explicit cache path
(never inside site-packages), and supplies the two length-controlled data files
(df_gamed.csv, instruction_difficulty.csv) from a user directory or the Hugging Face cache.

Offline setup for LC: download once `tatsu-lab/alpaca_eval` (dataset) files df_gamed.csv
and instruction_difficulty.csv (`huggingface-cli download tatsu-lab/alpaca_eval df_gamed.csv
instruction_difficulty.csv --repo-type dataset --local-dir DIR`) and pass `--lc-data DIR`,
or keep them in the HF cache and set HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from repro import userpaths
from repro.errors import ReproError
from repro.evaluation.judge import upstream
from repro.evaluation.judge.cache import JudgmentCache
from repro.evaluation.judge.gateway import serve

ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
N_INSTRUCTIONS = 805
LC_FILES = ("df_gamed.csv", "instruction_difficulty.csv")
# The columns alpaca-eval 0.6.2's length-controlled win rate reads from df_gamed.csv
# (metrics/glm_winrate.py); instruction_difficulty.csv is an index and one value column.
LC_GAMED_COLUMNS = ("model", "index", "instruction_difficulty", "preference", "std_delta_len",
                    "not_gamed_baseline")  # fmt: skip
COLUMNS = (
    "win_rate",
    "standard_error",
    "n_wins",
    "n_wins_base",
    "n_draws",
    "n_total",
    "discrete_win_rate",
    "avg_length",
    "length_controlled_winrate",
)


def _package_dir() -> Path:
    import alpaca_eval

    return Path(alpaca_eval.__file__).parent


def weighted_annotator() -> tuple[dict[str, Any], str]:
    """alpaca-eval's own weighted_alpaca_eval_gpt4_turbo config (its prompt template as an
    absolute path) and the template's text."""
    source = _package_dir() / "evaluators_configs" / ANNOTATOR / "configs.yaml"
    config = yaml.safe_load(source.read_text())[ANNOTATOR]
    template = _package_dir() / "evaluators_configs" / config["prompt_template"]
    config["prompt_template"] = str(template)
    return config, template.read_text()


def write_annotator_config(
    folder: Path, client_config: Path, *, concurrency: int, judge_model: str | None
) -> Path:
    """The package's own weighted_alpaca_eval_gpt4_turbo config, pointed at our client config.

    Only transport settings change: the client config path (our gateway), concurrency, and a
    single attempt (the gateway retries). The prompt, model, decoding and parser are untouched.
    """
    config, _ = weighted_annotator()
    kwargs = config["completions_kwargs"]
    kwargs.update(client_config_path=str(client_config), num_procs=concurrency, n_retries=1, sleep_time=0)
    if judge_model:
        kwargs["model_name"] = judge_model
        kwargs["requires_chatml"] = True
    target = folder / ANNOTATOR / "configs.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump({ANNOTATOR: config}, sort_keys=False))
    return target


def write_client_config(folder: Path, base_url: str) -> Path:
    """alpaca-eval's client config: the local gateway; the real key never appears here."""
    path = folder / "client_config.yaml"
    # the gateway retries upstream; the openai client must not retry on top (max_retries 0)
    entry = {"api_key": "repro-local-gateway", "base_url": base_url, "max_retries": 0}
    path.write_text(yaml.safe_dump({"default": [entry]}))
    return path


def find_lc_data(lc_data: Path | None) -> Path | None:
    """A folder holding both LC files: the user's, or the Hugging Face cache's."""
    if lc_data is not None:
        missing = [f for f in LC_FILES if not (Path(lc_data) / f).exists()]
        if missing:
            raise ReproError(f"{lc_data}: missing {', '.join(missing)} (length-controlled win rate data)")
        _check_lc_columns(Path(lc_data))
        return Path(lc_data)
    try:
        from huggingface_hub import hf_hub_download

        paths = [
            Path(hf_hub_download("tatsu-lab/alpaca_eval", f, repo_type="dataset", local_files_only=True))
            for f in LC_FILES
        ]
    except Exception:  # noqa: BLE001 - not cached: LC is reported as unavailable
        return None
    return paths[0].parent if paths[0].parent == paths[1].parent else None


def _check_lc_columns(folder: Path) -> None:
    """The header of each LC file, read before any judging (alpaca-eval fails at the end)."""
    import csv

    for name, needed, least in (("df_gamed.csv", LC_GAMED_COLUMNS, 0), ("instruction_difficulty.csv", (), 2)):
        try:
            with open(folder / name, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ReproError(f"{folder / name}: cannot be read as CSV ({exc})") from None
        if missing := [c for c in needed if c not in header]:
            raise ReproError(f"{folder / name}: no column {', '.join(missing)} (length-controlled data)")
        if len(header) < least:
            raise ReproError(f"{folder / name}: expected an index and a difficulty column, got {header}")


@contextlib.contextmanager
def _env(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _lc_files_from(folder: Path):
    """glm_winrate downloads its two CSVs from the hub; hand it the local files instead."""
    from alpaca_eval.metrics import glm_winrate

    original = glm_winrate.hf_hub_download

    def local(repo_id: str, filename: str, **kwargs: Any) -> str:
        return str(folder / filename)

    glm_winrate.hf_hub_download = local
    try:
        yield
    finally:
        glm_winrate.hf_hub_download = original


def evaluate(
    model_outputs: list[dict[str, Any]],
    reference_outputs: list[dict[str, Any]],
    backend,
    *,
    name: str,
    cache_path: Path | None = None,
    lc_data: Path | None = None,
    concurrency: int = 4,
    judge_model: str | None = None,
    annotations_out: Path | None = None,
    refresh: bool = False,
) -> dict[str, Any]:
    """Judge `model_outputs` against `reference_outputs` with alpaca-eval 0.6.2; the leaderboard row.
    `refresh`: ask the judge again for judgments the cache already holds."""
    from alpaca_eval import main as ae_main

    lc_folder = find_lc_data(lc_data)
    with tempfile.TemporaryDirectory(prefix="repro-ae-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        cache = JudgmentCache(cache_path) if cache_path else None
        base_url, gateway = stack.enter_context(serve(backend, cache, refresh=refresh))
        config = write_annotator_config(
            folder, write_client_config(folder, base_url), concurrency=concurrency, judge_model=judge_model
        )
        if lc_folder:
            stack.enter_context(_lc_files_from(lc_folder))
        # alpaca-eval logs failed judgments as tracebacks on the root logger; repro counts and
        # reports them (n_failed, incomplete), so its log is muted for the duration
        root = logging.getLogger()
        stack.callback(root.setLevel, root.level)
        root.setLevel(logging.CRITICAL)
        stack.enter_context(_env(TQDM_DISABLE="1"))  # alpaca-eval's own progress bars
        try:
            leaderboard, annotations = ae_main.evaluate(
                model_outputs=model_outputs,
                reference_outputs=reference_outputs,
                annotators_config=str(config),
                name=name,
                output_path=None,
                precomputed_leaderboard=None,
                is_return_instead_of_print=True,
                fn_metric="get_length_controlled_winrate" if lc_folder else "get_winrate",
                metric_kwargs={"save_weights_dir": None} if lc_folder else None,
                sort_by="win_rate",
                caching_path=str(folder / "alpaca_eval_annotations.json"),
            )
        except (TypeError, ValueError, KeyError) as exc:
            # alpaca-eval 0.6.2 cannot score a leaderboard row when no judgment came back
            # (round(None)); with failed judge calls counted, that is an incomplete result
            if not gateway.stats.failures:
                raise
            logging.getLogger(__name__).info("alpaca-eval could not score: %s", exc)
            leaderboard, annotations = None, []
        stats = gateway.stats.as_dict()
        if cache is not None:
            cache.close()
    if annotations_out is not None:
        annotations_out.write_text(json.dumps(annotations, indent=1, default=str))
    row = leaderboard.loc[name].to_dict() if leaderboard is not None else {}
    result = {k: _plain(row.get(k)) for k in COLUMNS}
    if not lc_folder:
        result["length_controlled_winrate"] = None
    result["lc_available"] = bool(lc_folder)
    expected = len(reference_outputs)
    failed = (
        sum(1 for a in annotations if a.get("preference") is None or _isnan(a.get("preference")))
        if leaderboard is not None
        else expected  # nothing could be scored
    )
    result["n_failed"] = failed
    result["incomplete"] = result["n_total"] is None or int(result["n_total"]) < expected
    result["expected_total"] = expected
    result["judge_calls"] = stats
    return result


def _isnan(x: Any) -> bool:
    try:
        return x != x  # noqa: PLR0124 - NaN check without numpy
    except TypeError:
        return False


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


# ---------------------------------------------------------------------------- replay


REPLAYED = frozenset({"instruction", "output_1", "output_2", "generator_2"})  # what a replay needs


def load_annotations(path: Path, needed: frozenset[str] = REPLAYED) -> list[dict[str, Any]]:
    """An alpaca_eval annotations.json: a non-empty list of judgments, each with the `needed` keys."""
    text = userpaths.read_text(path, "alpaca_eval annotations")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReproError(f"{path}: not a JSON annotations file ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list) or not data or not all(isinstance(r, dict) for r in data):
        raise ReproError(f"{path}: expected a non-empty JSON list of annotation objects")
    for i, row in enumerate(data):
        if missing := needed - set(row):
            raise ReproError(f"{path}: annotation {i} lacks {', '.join(sorted(missing))}")
    return data


def one_model_once_per_instruction(annotations: list[dict[str, Any]], path: Path) -> None:
    """What one leaderboard row scores: one model, each instruction judged once (a second
    model's judgments, or a repeated one, would be averaged into the row)."""
    models = sorted({str(a.get("generator_2")) for a in annotations})
    if len(models) > 1:
        names = ", ".join(models[:3])
        raise ReproError(f"{path}: judgments of {len(models)} models ({names}): rescore one at a time")
    seen: set[Any] = set()
    for a in annotations:
        if a["instruction"] in seen:
            raise ReproError(f"{path}: instruction judged twice: {str(a['instruction'])[:60]!r}")
        seen.add(a["instruction"])


def rescore(
    annotations_path: Path,
    *,
    reference: Path | None = None,
    lc_data: Path | None = None,
    concurrency: int = 4,
    cache_path: Path | None = None,
) -> dict[str, Any]:
    """Replay an annotations file's raw judge completions through alpaca-eval's full judging path."""
    annotations = load_annotations(annotations_path)
    one_model_once_per_instruction(annotations, annotations_path)
    name = annotations[0]["generator_2"]
    model_outputs = [
        {
            "instruction": a["instruction"],
            "output": a["output_2"],
            "generator": name,
            "dataset": a.get("dataset"),
        }
        for a in annotations
    ]
    if reference is not None:
        reference_outputs = userpaths.read_json(reference, "reference outputs")
        if (
            not isinstance(reference_outputs, list)
            or not reference_outputs
            or not all(isinstance(r, dict) and isinstance(r.get("output"), str) for r in reference_outputs)
        ):
            raise ReproError(f"{reference}: expected a non-empty JSON list of {{instruction, output}}")
        # alpaca-eval pairs the outputs by instruction: a judgment without its reference would
        # drop out of the win rate without a word
        referenced = {r.get("instruction") for r in reference_outputs}
        if unmatched := [a["instruction"] for a in annotations if a["instruction"] not in referenced]:
            raise ReproError(
                f"{reference}: {len(unmatched)} of the {len(annotations)} annotated instructions have no "
                f"reference output (first: {str(unmatched[0])[:60]!r})"
            )
    else:
        reference_outputs = [
            {
                "instruction": a["instruction"],
                "output": a["output_1"],
                "generator": a.get("generator_1", "reference"),
                "dataset": a.get("dataset"),
            }
            for a in annotations
        ]
    replay = upstream.Replay(annotations)
    if not replay.by_instruction:
        raise ReproError(f"{annotations_path}: no annotation holds the judge's raw completion")
    result = evaluate(
        model_outputs,
        reference_outputs,
        replay,
        name=name,
        lc_data=lc_data,
        concurrency=concurrency,
        cache_path=cache_path,
    )
    result["model"] = name
    result["replayed"] = len(replay.by_instruction)
    return result


def avg_length(outputs: list[dict[str, Any]]) -> int:
    """alpaca-eval's avg_length: int(mean of len(output) in characters)."""
    return int(sum(len(o["output"]) for o in outputs) / len(outputs))


os.environ.setdefault("OPENAI_MAX_CONCURRENCY", "4")

"""Issue 32, section 3: each of these ended in a traceback or failed late; each is one line now,
before any work where possible. (A plugin whose run() raises: tests/test_benchmarks.py.)"""

from __future__ import annotations

import pytest


def one_line(proc) -> str:
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.startswith("repro: error: ") and proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    return proc.stderr


@pytest.fixture
def results(tmp_path):
    """One run's result, as compare and report read it."""
    from tests.test_trust import write_run

    write_run(tmp_path / "results", "seed42")
    return tmp_path / "results"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("compare", "{results}", "--plot", "/proc/x.png"), "/proc/x.png: cannot be written, proc"),
        (("report", "{results}", "-o", "/proc/report.html"), "/proc/report.html: cannot be written"),
        (("report", "{empty}", "--format", "markdown"), "no runs found under"),
        (("report", "{empty}", "-o", "{empty}/r.html"), "no runs found under"),
        (("report", "{results}", "-o", "{empty}/r.pdf"), "the html report goes to a .html or .htm file"),
        (("report", "{results}", "-f", "markdown", "-o", "{empty}/r.html"), "report goes to a .md or"),
    ],
)  # fmt: skip
def test_outputs_and_folders(args, says, results, tmp_path, cli):
    """compare --plot /proc/x.png and report -o /proc/report.html were 58- and 42-line tracebacks;
    report of an empty folder exited 0 with a report of no runs where compare says none found."""
    (tmp_path / "empty").mkdir()
    proc = cli(*(a.format(results=results, empty=tmp_path / "empty") for a in args))
    assert says in one_line(proc)
    assert not (tmp_path / "empty" / "r.html").exists()


def test_an_unwritable_cache_is_one_line_before_any_work(tmp_path, cli, monkeypatch):
    """REPRO_CACHE=/proc/nope repro run tiny: a 62-line traceback."""
    monkeypatch.setenv("REPRO_CACHE", "/proc/nope")
    proc = cli("run", "tiny", "--results", str(tmp_path / "r"), timeout=120)
    assert "preflight: cache: /proc/nope: cannot be created or written" in one_line(proc)
    assert not (tmp_path / "r").exists()


def test_an_empty_dataset_folder_is_one_line_before_training(tmp_path, cli, monkeypatch):
    """repro run tiny --dataset EMPTY_DIR: training started, the error printed twice, a run
    folder was left behind."""
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    proc = cli(
        "run", "tiny", "--dataset", str(tmp_path / "empty"), "--results", str(tmp_path / "r"), timeout=120
    )
    assert "preflight: dataset:" in one_line(proc) and "no train.jsonl" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_a_malformed_generation_config_is_one_line_before_training(tmp_path, cli, monkeypatch):
    """A recipe whose generation config has no 'alpaca_eval' section: preflight only checked that
    the file was there, so the run trained and then failed in its evaluation."""
    import yaml

    from repro import paths

    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    broken = tmp_path / "broken-generation.yaml"
    broken.write_text("greedy: {temperature: 0}\n")
    recipe = yaml.safe_load((paths.ROOT / "recipes" / "settings" / "tiny.yaml").read_text())
    recipe["name"] = "badgen"
    recipe["evaluation"]["generation"] = str(broken)
    (tmp_path / "badgen.yaml").write_text(yaml.safe_dump(recipe))
    proc = cli("run", str(tmp_path / "badgen.yaml"), "--method", "simpo", "--results", str(tmp_path / "r"),
               timeout=120)  # fmt: skip
    assert "preflight: generation config:" in one_line(proc)
    assert "expected an 'alpaca_eval' section" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_the_ranks_error_is_said_once(tmp_path):
    """A training failure: every rank's error was echoed, then 'training failed (exit 1)'."""
    import sys

    from repro.train import launch

    script = (
        "print('repro: error: cannot load dataset X'); print('repro: error: cannot load dataset X'); exit(1)"
    )
    run = launch.Run(tmp_path, tmp_path / "run.json", tmp_path / "a.yaml", tmp_path / "d.json",
                     [sys.executable, "-c", script], {}, 1, 1, {})  # fmt: skip
    errors: list[str] = []
    seen: list[str] = []
    assert launch.launch(run, echo=seen.append, errors=errors) == 1
    assert errors == ["repro: error: cannot load dataset X"] and seen == []


def test_models_fetch_into_a_cache_that_is_a_file_is_one_line(tmp_path, cli, monkeypatch):
    """REPRO_CACHE=FILE repro models fetch: NotADirectoryError's traceback."""
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder\n")
    monkeypatch.setenv("REPRO_CACHE", str(cache))
    proc = cli("models", "fetch", "smollm2-135m-instruct")
    assert f"{cache}: cannot hold models (Not a directory)" in one_line(proc)


def test_an_empty_model_folder_says_it_is_empty(tmp_path, cli):
    """transformers' answer was a paragraph on sentencepiece and tiktoken, its line breaks escaped."""
    (tmp_path / "empty").mkdir()
    empty = str(tmp_path / "empty")
    output = str(tmp_path / "e")
    said = f"cannot load tokenizer '{empty}': the folder is empty"
    assert said in one_line(cli("check-tokenizer", empty, "-s", "tiny"))
    # `repro eval` says so in its preflight, before it loads anything
    said = f"preflight: model: {empty} (MODEL) is an empty folder"
    assert said in one_line(cli("eval", empty, "-s", "tiny", "-o", output))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("eval", "{folder}", "--setting", "tiny"),
         "preflight: model: {folder} (MODEL) is no model folder (no config.json)"),
        (("eval", "{gguf}", "--setting", "tiny"),
         "{gguf}: is a file, expected a folder or a hub id (MODEL); a GGUF file is imported first: "
         "repro models import {gguf} -o DIR"),
        (("eval", "{model}", "--setting", "tiny", "--reference-model", "{folder}"),
         "preflight: reference model: {folder} (--reference-model) is no model folder"),
        # a setting judged against its starting model's answers: said before MODEL loads (it
        # was said once the model and its generation engine had loaded: 50 s for SmolLM2)
        (("eval", "{model}", "--setting", "tiny", "--bench", "alpaca_eval2"),
         "setting 'tiny' compares against its starting model: pass --reference-model PATH"),
        (("run", "tiny", "--set", "model_name_or_path={folder}"),
         "preflight: model: {folder} is no model folder"),
        (("run", "tiny", "--set", "model_name_or_path={gguf}"),
         "preflight: model: {gguf} is a GGUF file: import it first (repro models import {gguf} -o DIR)"),
    ],
)  # fmt: skip
def test_a_local_path_that_is_no_model_is_one_line_before_any_load(args, says, tmp_path, cli, monkeypatch):
    """`repro eval FOLDER` of a folder that holds no model (a results folder, the folder above the
    checkpoint) loaded it and ended in the tokenizer library's "Couldn't instantiate the backend
    tokenizer ... You need to have sentencepiece or tiktoken installed"; `repro run` took such a
    folder, or a GGUF file, as its model and failed once loading it. Each is now one line saying
    what the path is and what to give instead, before anything loads or is written."""
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    where = {"folder": tmp_path / "results", "gguf": tmp_path / "model.gguf", "model": tmp_path / "model"}
    where["folder"].mkdir()
    (where["folder"] / "result.json").write_text("{}")  # a results folder, not the checkpoint in it
    where["gguf"].write_bytes(b"GGUF")
    where["model"].mkdir()
    (where["model"] / "config.json").write_text("{}")
    given = [a.format(**where) for a in args]
    proc = cli(*given, "--output" if args[0] == "eval" else "--results", str(tmp_path / "out"), timeout=120)
    assert says.format(**where) in one_line(proc)
    assert not (tmp_path / "out").exists()

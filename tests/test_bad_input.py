"""Bad input never ends in a traceback: every command, every class of bad path and bad file.

The sweep reads the commands and their path parameters from the Typer app itself (each path
parameter declares a role: an existing file, folder or path, an output folder or file), so a
new command or option is covered without editing this file. Each case must end with exit
code 1 or 2 and exactly one `repro: error:` line on stderr that names the bad path. Most
cases run in-process through `repro.cli.main.main` (an uncaught exception there is the
traceback a user would see); a few go through the installed entry point as a user would.
Commands that train or judge get only inputs that fail while the command line is parsed,
plus --dry-run / a nonexistent model or preset, so nothing expensive can start.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import traceback
import typing
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repro.cli.main import app, main

# --------------------------------------------------------------------------- the commands


def leaf_commands() -> dict[str, typing.Any]:
    """'data preview' -> click command, for every command the app registers."""
    found = {}

    def walk(command, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = leaf_commands()


def role(param) -> str | None:
    return getattr(param.callback, "role", None)


def is_path(param) -> bool:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    return annotation is Path or Path in typing.get_args(annotation)


# Values for required parameters that are neither paths nor models (default: "tiny"), and
# options that keep a command cheap should a path check ever be missing: a dry run, an empty
# folder as the model (fails at once), a preset that does not exist.
REQUIRED = {"eval": {"setting": "tiny"}}
SAFE = {
    "run": {"--dry-run": None},
    "sweep": {"--lr": "1e-6", "--dry-run": None},
    "train": {"--dry-run": None},
    "eval": {"--judge": "rule"},
    "data on-policy": {"--model": "{root}/a-folder", "--reward-model": "{root}/a-folder"},
    "bench train": {"--preset": "no-such-preset"},
}


# --------------------------------------------------------------------------- running


def run_inprocess(argv: list[str]) -> tuple[int | str, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except BaseException:  # noqa: BLE001 - exactly what the user would have seen
        return "traceback", out.getvalue(), err.getvalue() + traceback.format_exc()
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(argv: list[str], needle: str | None = None) -> str:
    code, _, err = run_inprocess(argv)
    shown = f"repro {' '.join(argv)}\n{err}"
    assert "Traceback" not in err and code != "traceback", shown
    assert code in (1, 2), shown
    assert err.startswith("repro: error: ") and err.count("\n") == 1, shown
    if needle is not None:
        assert needle in err, shown
    return err


# --------------------------------------------------------------------------- bad things


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A scratch folder (also the working directory: defaults like out/ land there)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file.txt").write_text("text\n")
    readonly = tmp_path / "read-only"
    readonly.mkdir()
    readonly.chmod(0o555)
    if os.access(readonly, os.W_OK):  # root ignores modes; /proc/1 refuses writes even to root
        readonly = Path("/proc/1")
    yield {"root": tmp_path, "readonly": readonly}
    (tmp_path / "read-only").chmod(0o755)


def bad_paths(kind: str, place: dict) -> list[Path]:
    """The bad values for a parameter of role `kind` (see repro.cli.common.ROLES)."""
    root = place["root"]
    folder, file, readonly = root / "a-folder", root / "a-file.txt", place["readonly"]
    if kind == "file":
        return [root / "missing.json", folder]
    if kind == "dir":
        return [root / "missing-folder", file]
    if kind == "path":
        return [root / "missing.jsonl"]
    if kind == "output-dir":
        return [file, file / "below-a-file", readonly / "out"]
    if kind == "local-or-hub":
        return [root / "missing-model", file]
    if kind == "output-file":  # .json and .png: some outputs accept only one of them
        return [
            where / f"out{suffix}"
            for suffix in (".json", ".png")
            for where in (root / "no-such-folder", file, readonly)
        ]
    raise AssertionError(f"unknown role {kind}")


VALID = {
    "file": "a-file.txt",
    "dir": "a-folder",
    "path": "a-file.txt",
    "output-dir": "fresh-output",
    "local-or-hub": "a-folder",
}


def argv_for(name: str, command, target, value: str, root: Path) -> list[str]:
    """The command line of `name` with `value` for `target` and harmless values elsewhere."""
    positional, options = [], []
    for param in command.params:
        if param is target:
            given = value
        elif param.required:
            kind = role(param)
            given = str(root / VALID[kind]) if kind else REQUIRED.get(name, {}).get(param.name, "tiny")
        else:
            continue
        if param.param_type_name == "argument":
            positional.append(given)
        else:
            options += [param.opts[0], given]
    for option, given in SAFE.get(name, {}).items():
        if option not in getattr(target, "opts", []):  # never override the value under test
            options += [option] if given is None else [option, given.format(root=root)]
    return [*name.split(), *positional, *options]


def path_cases() -> list[tuple[str, str]]:
    return [
        (name, param.name)
        for name, command in COMMANDS.items()
        for param in command.params
        if role(param) is not None
    ]


# --------------------------------------------------------------------------- the sweep


def test_every_path_parameter_declares_its_role():
    """A Path parameter without a role would skip the early check (and this sweep)."""
    unchecked = [
        f"{name} {param.name}"
        for name, command in COMMANDS.items()
        for param in command.params
        if is_path(param) and role(param) is None
    ]
    assert not unchecked, f"use common.path_argument/path_option for: {unchecked}"
    assert len(path_cases()) >= 15


@pytest.mark.parametrize(("name", "param_name"), path_cases())
def test_bad_paths_are_one_line_errors(name, param_name, place):
    command = COMMANDS[name]
    param = next(p for p in command.params if p.name == param_name)
    for bad in bad_paths(role(param), place):
        argv = argv_for(name, command, param, str(bad), place["root"])
        assert_one_line_error(argv, needle=str(bad))


# Contents a user might hand over by mistake: each read before any expensive work starts.
CONTENTS = {
    "empty": b"",
    "blank lines": b"\n\n  \n",
    "invalid JSON": b"{not json\n",
    "invalid YAML": b"a: [unclosed\n  b: {\n",
    "JSON object": b'{"unexpected": 1}\n',
    "JSON list of numbers": b"[1, 2, 3]\n",
    "JSON string": b'"just text"\n',
    "JSON null": b"null\n",
    "binary garbage": bytes(range(256)) * 4,
}
READ_EARLY = [  # (command, parameter): the file is read before any model, judge or process
    ("alpaca-eval rescore", "annotations"),
    ("alpaca-eval rescore", "reference"),
    ("mt-bench score", "judgments"),
    ("arena-hard score", "judgments"),
    ("data preview", "input_file"),
    ("env check", "lock"),
    ("env freeze", "lock"),
    ("show", "setting"),
    ("train", "setting"),
]
ONE_ANNOTATION = [{"instruction": "i", "output_1": "a", "output_2": "b", "generator_2": "m"}]


@pytest.mark.parametrize(("name", "param_name"), READ_EARLY)
def test_bad_file_contents_are_one_line_errors(name, param_name, place):
    command = COMMANDS[name]
    param = next(p for p in command.params if p.name == param_name)
    root = place["root"]
    (root / "a-file.txt").write_text(json.dumps(ONE_ANNOTATION))  # a valid file for the others
    for label, content in CONTENTS.items():
        bad = root / f"{label.replace(' ', '-')}.json"
        bad.write_bytes(content)
        argv = argv_for(name, command, param, str(bad), root)
        err = assert_one_line_error(argv)
        assert bad.name in err or "setting" in err, f"{label}: {err}"


def test_arena_hard_answers_folder_with_bad_files(place):
    golden = Path(__file__).parent / "golden" / "arena_hard"
    answers = place["root"] / "answers"
    answers.mkdir()
    for label, content in CONTENTS.items():
        if label in ("empty", "blank lines"):
            continue
        (answers / "model-x.jsonl").write_bytes(content)
        assert_one_line_error(
            ["arena-hard", "score", str(golden), "--answers", str(answers)], "model-x.jsonl"
        )


# --------------------------------------------------------------------------- named cases of issue 13


def mt_judgment(**fields) -> str:
    row = {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 7, "turn": 1}
    return json.dumps({**row, **fields})


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (mt_judgment(score="seven"), 'score "seven" is not a number'),
        (mt_judgment(score=None), "score null is not a number"),
        (mt_judgment(score=True), "score true is not a number"),
        (mt_judgment(turn=3), "turn 3 is not 1 or 2"),
        (mt_judgment(turn="1"), 'turn "1" is not 1 or 2'),
        (mt_judgment(model=["m"]), "is not a name"),
    ],
)
def test_mt_bench_bad_judgments(line, needle, tmp_path):
    path = tmp_path / "judgments.jsonl"
    path.write_text(mt_judgment() + "\n" + line + "\n")
    assert_one_line_error(["mt-bench", "score", str(path)], needle)


def test_mt_bench_out_of_range_duplicates_and_no_nan(tmp_path):
    """Oracle: hand count. Ratings 7 and 9 count; 15 and 0 are outside 1-10 (failed); -1 is
    FastChat's failed rating; the repeated (question 81, turn 1) judgment is a duplicate.
    Model 'none' has no countable rating: its means are null, never NaN."""
    path = tmp_path / "judgments.jsonl"
    rows = [
        mt_judgment(score=7),
        mt_judgment(score=9, turn=2),
        mt_judgment(score=15, question_id=82),
        mt_judgment(score=0, question_id=83),
        mt_judgment(score=-1, question_id=84),
        mt_judgment(score=7),
        mt_judgment(model="none", score=-1),
    ]
    path.write_text("\n".join(rows) + "\n")
    code, out, err = run_inprocess(["mt-bench", "score", str(path), "--format", "json"])
    assert code == 0, err
    assert "NaN" not in out
    scores = json.loads(out)
    m = scores["m"]
    assert (m["n_counted"], m["n_dropped"], m["n_out_of_range"], m["n_duplicates"]) == (3, 3, 2, 1)
    assert m["turn_1"] == pytest.approx(7.0) and m["turn_2"] == pytest.approx(9.0)
    assert scores["none"]["average"] is None and scores["none"]["turn_1"] is None
    assert "1 duplicated judgments" in err and "2 ratings outside 1-10" in err
    assert all(line.startswith("repro: warning: ") for line in err.splitlines())
    # FastChat's own rule (every parsed number averaged in) stays one flag away
    code, out, _ = run_inprocess(["mt-bench", "score", str(path), "--format", "json", "--keep-out-of-range"])
    kept = json.loads(out)["m"]
    assert code == 0 and kept["n_counted"] == 5 and kept["average"] == pytest.approx((7 + 9 + 15 + 0 + 7) / 5)


def test_arena_hard_missing_answers_and_dropped_verdicts(tmp_path):
    """Oracle: the golden judgments hold invalid labels; every game without a valid label is
    counted per model and shown (table column and a warning), and 60 questions x 2 games =
    the counted games plus the dropped ones."""
    golden = Path(__file__).parent / "golden" / "arena_hard"
    assert_one_line_error(["arena-hard", "score", str(golden), "--answers", "/missing"], "/missing")
    code, out, err = run_inprocess(["arena-hard", "score", str(golden), "--format", "json"])
    assert code == 0 and "NaN" not in out
    scores = json.loads(out)
    for model in ("model-x", "model-y"):
        rows = [json.loads(line) for line in (golden / f"{model}.jsonl").read_text().splitlines() if line]
        labels = [g.get("score") for r in rows for g in r["games"]]
        expected = sum(label not in ("A>>B", "A>B", "A=B", "B>A", "B>>A") for label in labels)
        assert expected > 0 and scores[model]["games_without_verdict"] == expected
    assert err.startswith("repro: warning: games without a valid verdict")
    code, out, _ = run_inprocess(["arena-hard", "score", str(golden)])
    assert code == 0 and "no verdict" in out


def test_arena_hard_counts_missing_games_and_refuses_a_question_judged_twice(tmp_path):
    """Oracle: hand count. A judgment holds two games; one with a single game or none used to
    drop the missing games from the battles without counting them, and a question judged twice
    was counted twice (as show_result.py would)."""
    golden = Path(__file__).parent / "golden" / "arena_hard" / "model-x.jsonl"
    rows = [json.loads(line) for line in golden.read_text().splitlines() if line]
    _, out, _ = run_inprocess(["arena-hard", "score", str(golden), "--format", "json"])
    before = json.loads(out)["model-x"]
    cut = [{**rows[0], "games": rows[0]["games"][:1]}, {**rows[1], "games": []}, *rows[2:]]
    path = tmp_path / "model-x.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in cut) + "\n")
    code, out, _ = run_inprocess(["arena-hard", "score", str(path), "--format", "json"])
    after = json.loads(out)["model-x"]
    removed = [rows[0]["games"][1], *rows[1]["games"]]
    already = sum(g.get("score") not in ("A>>B", "A>B", "A=B", "B>A", "B>>A") for g in removed)
    assert code == 0 and after["games_without_verdict"] - before["games_without_verdict"] == 3 - already
    assert after["battles"] < before["battles"]
    path.write_text("\n".join(json.dumps(r) for r in [*rows, rows[5]]) + "\n")
    assert_one_line_error(["arena-hard", "score", str(path)], f"question {rows[5]['question_id']} of")


def test_compare_skips_malformed_runs_and_goes_on(tmp_path):
    good = {"setting": "llama3-instruct", "method": "simpo", "complete": True, "scores": {"ae2_lc": 44.0}}
    bad = {
        "list-scores": {**good, "scores": [1, 2]},
        "text-score": {**good, "scores": {"ah": "high"}},
        "numeric-setting": {**good, "setting": 3},
        "nan-score": {**good, "scores": {"ae2_lc": float("nan")}},  # json writes NaN; its row vanished
    }
    for name, data in {"good": good, **bad}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps(data))
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "result.json").write_bytes(bytes(range(256)))
    code, out, err = run_inprocess(["compare", str(tmp_path), "--format", "json", "--only-reproduced"])
    assert code == 0, err
    skipped = {Path(s["path"]).parent.name: s["reason"] for s in json.loads(out)["skipped"]}
    assert set(skipped) == {*bad, "garbage"} and "'scores' is not a mapping" in skipped["list-scores"]
    lines = err.splitlines()
    assert "scores.ae2_lc is not a finite number" in skipped["nan-score"]
    assert len(lines) == 6 and all(x.startswith("repro: warning: skipped") for x in lines[:5])
    assert lines[5].startswith("repro: warning: unverified") and "no manifest.json" in lines[5]
    assert [r["reproduced_mean"] for r in json.loads(out)["rows"]] == [44.0]


def test_a_score_outside_its_metric_range_is_refused_when_read(tmp_path):
    """A hand-edited win rate of 1e9 was compared (only "unverified"); each metric's range is
    data beside its definition (Metric.bounds), and the scores without one take any number."""
    from repro.runs.cluster import status

    run = {"setting": "llama3-instruct", "method": "simpo", "complete": True}
    # the ends of every range, and numbers far beyond any range for the scores that have none
    legit = {"ae2_lc": 0.0, "ae2_wr": 100.0, "ae2_wr_se": 1e3, "ae2_length": 1e6, "ah": 100,
             "ah_ci": [0.0, 100.0], "ah_length": 1e6, "mt_bench": 1.0, "gsm": 0.0, "gsm_length": 1e6,
             "mmlu": 100.0, "mmlu_length": 0.0}  # fmt: skip
    bad = {
        "huge-win-rate": ({"ae2_wr": 1e9}, "scores.ae2_wr is 1e+09, outside AE2 WR's range 0 to 100"),
        "negative-lc": ({"ae2_lc": -0.5}, "scores.ae2_lc is -0.5, outside AE2 LC's range 0 to 100"),
        "arena-hard": ({"ah": 100.5}, "scores.ah is 100.5, outside Arena-Hard's range 0 to 100"),
        "mt-bench-zero": ({"mt_bench": 0}, "scores.mt_bench is 0, outside MT-Bench's range 1 to 10"),
        "mt-bench-eleven": ({"mt_bench": 11.0}, "scores.mt_bench is 11, outside MT-Bench's range 1 to 10"),
        "gsm": ({"gsm": 101}, "scores.gsm is 101, outside GSM's range 0 to 100"),
        "mmlu": ({"mmlu": -1}, "scores.mmlu is -1, outside MMLU's range 0 to 100"),
    }
    for name, scores in {"legit": legit, **{n: s for n, (s, _) in bad.items()}}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps({**run, "scores": scores}))
    code, out, err = run_inprocess(["compare", str(tmp_path), "--format", "json", "--only-reproduced"])
    assert code == 0, err
    skipped = {Path(s["path"]).parent.name: s["reason"] for s in json.loads(out)["skipped"]}
    assert skipped == {name: needle for name, (_, needle) in bad.items()}
    assert sum(line.startswith("repro: warning: skipped") for line in err.splitlines()) == len(bad)
    published = ("ae2_lc", "ae2_wr", "ah", "gsm", "gsm_length", "mmlu", "mmlu_length")  # compare's rows
    rows = {r["metric"]: r["reproduced_mean"] for r in json.loads(out)["rows"]}
    assert rows == {k: legit[k] for k in published}
    # `repro status` reads it through the same reader: unreadable, with the reason
    folder = tmp_path / "status" / "llama3-instruct" / "simpo" / "0123456789-seed42"
    folder.mkdir(parents=True)
    (tmp_path / "huge-win-rate" / "result.json").rename(folder / "result.json")
    (row,) = status.collect(tmp_path / "status", scheduler=False)
    assert row.kind == "unreadable" and "outside AE2 WR's range 0 to 100" in row.stage


def test_plot_into_a_folder_writes_and_prints_the_real_path(tmp_path):
    (tmp_path / "runs" / "r").mkdir(parents=True)
    one = {"setting": "llama3-instruct", "method": "simpo", "complete": True, "scores": {"ae2_lc": 44.0}}
    (tmp_path / "runs" / "r" / "result.json").write_text(json.dumps(one))
    code, _, err = run_inprocess(["compare", str(tmp_path / "runs"), "--plot", str(tmp_path), "-f", "csv"])
    written = tmp_path / "compare.png"
    assert code == 0 and written.read_bytes()[:4] == b"\x89PNG"
    assert err.splitlines()[-1] == f"wrote {written}"
    assert_one_line_error(["compare", str(tmp_path / "runs"), "--plot", str(tmp_path / "c.txt")], ".txt")


def test_failure_under_a_progress_bar_is_one_line(tmp_path):
    """An error raised while a progress bar is up leaves no bar (nor blank line) above it."""
    (tmp_path / "empty-model").mkdir()
    model = str(tmp_path / "empty-model")
    argv = ["data", "on-policy", "--output", str(tmp_path / "out"), "--model", model, "--reward-model", model]
    assert_one_line_error([*argv, "--prompts", "some/dataset:train"], "cannot load model")


def test_no_json_output_holds_nan(tmp_path):
    """JSON has no NaN: the renderer writes null and refuses (allow_nan=False) otherwise."""
    from repro import io

    text = io.dumps({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": float("-inf")}})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": {"d": None}}


# --------------------------------------------------------------------------- as a user runs it


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["mt-bench", "score", "{dir}"], "is a directory, expected a file"),
        (["alpaca-eval", "rescore", "{dir}"], "is a directory, expected a file"),
        (["data", "preview", "tiny", "--input", "{dir}"], "is a directory, expected a file"),
        (["env", "check", "--lock", "{dir}"], "is a directory, expected a file"),
        (["compare", "{file}"], "not a directory"),
        (["run", "tiny", "--results", "{file}", "--dry-run"], "is a file, expected a directory"),
        (["compare", "{dir}", "--plot", "{dir}/nowhere/c.png"], "does not exist"),
    ],
)
def test_installed_entry_point(args, needle, cli, tmp_path):
    (tmp_path / "f.json").write_text("{}")
    argv = [a.format(dir=tmp_path, file=tmp_path / "f.json") for a in args]
    proc = cli(*argv)
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("repro: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr


# --------------------------------------------------------------------------- hypothesis

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-20, 20),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
mt_rows = st.fixed_dictionaries(
    {"model": st.sampled_from(["a", "b"]), "score": json_values, "turn": json_values},
    optional={"question_id": json_values},
)
arena_rows = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["a", "b"]),
        "games": st.lists(json_values | st.fixed_dictionaries({"score": json_values}), max_size=3),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(mt_rows | json_values, max_size=6))
def test_mt_bench_any_judgment_lines_score_or_fail_cleanly(rows, tmp_path):
    """Whatever the lines hold: a score table whose JSON has no NaN, or one ReproError."""
    from repro import io
    from repro.errors import ReproError
    from repro.evaluation.scorers import mt_bench

    path = tmp_path / "j.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        scores = mt_bench.score(mt_bench.load_judgments(path))
    except ReproError:
        return
    json.loads(io.dumps(scores))  # allow_nan=False: raises on NaN


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(arena_rows | json_values, max_size=6))
def test_arena_hard_any_judgment_lines_score_or_fail_cleanly(rows, tmp_path):
    from repro import io
    from repro.errors import ReproError
    from repro.evaluation.scorers import arena_hard

    path = tmp_path / "j.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        scores = arena_hard.score(
            arena_hard.battles_from_judgments(arena_hard.load_judgments([path])), rounds=5
        )
    except ReproError:
        return
    json.loads(io.dumps(scores))


def test_rescore_refuses_files_that_would_change_the_row_silently(cli, tmp_path):
    """A second model's judgments, a repeated instruction or a reference without some of the
    instructions used to be averaged in or dropped by alpaca-eval's merge, and an empty
    reference ended in an IndexError; LC files without alpaca-eval's columns in a KeyError
    after the judging. Each is now one line before anything is judged."""
    rows = [
        {"instruction": f"q{i}", "output_1": "r", "output_2": "a", "generator_2": "m", "raw_completion": {}}
        for i in range(3)
    ]
    files = {
        "two.json": [*rows[:2], {**rows[2], "generator_2": "other"}],
        "dup.json": [*rows, rows[0]],
        "good.json": rows,
        "ref.json": [{"instruction": "q0", "output": "ref"}],
        "empty.json": [],
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    lc = tmp_path / "lc"
    lc.mkdir()
    (lc / "df_gamed.csv").write_text("a,b\n1,2\n")
    (lc / "instruction_difficulty.csv").write_text("index,instruction_difficulty\n0,0.5\n")
    cases = [
        (["two.json"], "judgments of 2 models (m, other): rescore one at a time"),
        (["dup.json"], "instruction judged twice: 'q0'"),
        (["good.json", "--reference", "{tmp}/ref.json"], "2 of the 3 annotated instructions have no"),
        (["good.json", "--reference", "{tmp}/empty.json"], "expected a non-empty JSON list"),
        (["good.json", "--lc-data", "{tmp}/lc"], "df_gamed.csv: no column model, index"),
    ]
    for args, message in cases:
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        proc = cli("alpaca-eval", "rescore", str(tmp_path / args[0]), *args[1:])
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr

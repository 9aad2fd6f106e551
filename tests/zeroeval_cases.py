"""Synthetic model outputs for the ZeroEval differential tests (hand-written for repro).

Each case is one model output with its reference; `case_files` turns the cases into
ZeroEval result files: one per case (the case plus a well-formed, correct "anchor" item,
so the upstream scorer never divides by zero and per-case correctness, answeredness and
reasoning length can be read off its summary) and one file holding every case.
"""

from __future__ import annotations

import json
from pathlib import Path

FENCE = "```"

# (name, output, reference answer)
GSM_CASES = [
    ("fenced", f'{FENCE}json\n{{\n    "reasoning": "3 + 4 = 7",\n    "answer": "7"\n}}\n{FENCE}', "# 7"),
    ("fenced-space", f'{FENCE} json\n{{"reasoning": "r", "answer": "12"}}\n{FENCE}', "# 12"),
    (
        "two-objects-last-wins",
        '{"reasoning": "draft", "answer": "5"}\nthen\n{"reasoning": "final", "answer": "6"}',
        "# 6",
    ),
    (
        "two-objects-first-right",
        '{"reasoning": "draft", "answer": "5"} {"reasoning": "final", "answer": "6"}',
        "# 5",
    ),
    ("last-object-without-answer", '{"reasoning": "a", "answer": "5"} {"note": "done"}', "# 5"),
    ("nested-answer", '{"result": {"answer": "7"}}', "# 7"),
    ("unquoted-value", '{"reasoning": "6 * 7", "answer": 42 apples}', "# 42"),
    ("unquoted-value-word", '{"reasoning": "two plus two", "answer": four}', "# 4"),
    ("unquoted-keys", '{reasoning: "half of 10", answer: 5}', "# 5"),
    ("unquoted-key-quoted-value", '{reasoning: "x", answer: "8"}', "# 8"),
    ("fraction", '{"reasoning": "3 of 4", "answer": "3/4"}', "# 0.75"),
    ("fraction-integer", '{"reasoning": "10 / 2", "answer": "10/2"}', "# 5"),
    ("fraction-spaces", '{"reasoning": "r", "answer": " 1 / 4 "}', "# 0.25"),
    ("fraction-thirds", '{"reasoning": "r", "answer": "10/3"}', "# 3.3333333333333335"),
    ("fraction-arithmetic", '{"reasoning": "r", "answer": "(3+5)/2"}', "# 4"),
    ("fraction-power", '{"reasoning": "r", "answer": "2**3/2"}', "# 4"),
    ("fraction-with-unit", '{"reasoning": "r", "answer": "1/2 cup"}', "# 1"),
    ("fraction-by-zero", '{"reasoning": "r", "answer": "5/0"}', "# 5"),
    ("fraction-name", '{"reasoning": "r", "answer": "x/2"}', "# 2"),
    ("fraction-negative", '{"reasoning": "r", "answer": "-3/4"}', "# -0.75"),
    ("fraction-in-reference", '{"reasoning": "r", "answer": "0.5"}', "# 1/2"),
    ("dollars-commas", '{"reasoning": "r", "answer": "$1,234"}', "# 1234"),
    ("dollars-cents", '{"reasoning": "r", "answer": "$1,234.50"}', "# 1,234.5"),
    ("negative", '{"reasoning": "lost money", "answer": "-21"}', "# -21"),
    ("negative-dollar", '{"reasoning": "r", "answer": "-$21"}', "# -21"),
    ("unicode-minus", '{"reasoning": "r", "answer": "\u221221"}', "# -21"),
    ("json-number", '{"reasoning": "r", "answer": 18}', "# 18"),
    ("json-float", '{"reasoning": "r", "answer": 18.0}', "# 18"),
    ("json-list", '{"reasoning": "r", "answer": ["18"]}', "# 18"),
    ("null-answer", '{"reasoning": "r", "answer": null}', "# 18"),
    ("empty-answer", '{"reasoning": "r", "answer": ""}', "# 18"),
    ("units", '{"reasoning": "r", "answer": "18 dollars"}', "# 18"),
    ("first-number-decides", '{"reasoning": "r", "answer": "18 or 20"}', "# 20"),
    ("balanced-braces-in-reasoning", '{"reasoning": "sets {1,2} and {3}", "answer": "3"}', "# 3"),
    ("open-brace-in-reasoning", '{"reasoning": "an open brace { never closed", "answer": "3"}', "# 3"),
    ("close-brace-in-reasoning", '{"reasoning": "a stray } here", "answer": "3"}', "# 3"),
    ("newlines-in-reasoning", '{"reasoning": "line one\nline two", "answer": "8"}', "# 8"),
    ("escaped-newline-in-reasoning", '{"reasoning": "line one\\nline two", "answer": "8"}', "# 8"),
    ("escaped-quotes", '{"reasoning": "he said \\"hi\\"", "answer": "2"}', "# 2"),
    ("tab-in-string", '{"reasoning": "a\tb", "answer": "9"}', "# 9"),
    ("trailing-comma", '{"reasoning": "x", "answer": "9",}', "# 9"),
    ("python-dict", "{'reasoning': 'x', 'answer': '9'}", "# 9"),
    ("reasoning-list", '{"reasoning": ["a", "b"], "answer": "1"}', "# 1"),
    ("no-reasoning", '{"answer": "11"}', "# 11"),
    ("no-json-at-all", "The answer is 42.", "# 42"),
    ("no-json-final-answer-colon", "Reasoning done. Final answer: 42.", "# 42"),
    ("empty-output", "", "# 1"),
    ("prose-then-json", 'Let me think {step by step}.\n{"reasoning": "ok", "answer": "30"}', "# 30"),
    ("unicode", '{"reasoning": "Janet\u2019s ducks \u00e9t\u00e9", "answer": "16"}', "# 16"),
]

# (name, output) with choices A-D and the correct answer "gamma" (letter C)
MMLU_CHOICES = ["alpha", "beta", "gamma", "delta"]
MMLU_CASES = [
    ("letter", '{"reasoning": "it is gamma", "answer": "C"}'),
    ("parenthesized", '{"reasoning": "r", "answer": "(C)"}'),
    ("letter-paren-text", '{"reasoning": "r", "answer": "C) gamma"}'),
    ("letter-dot", '{"reasoning": "r", "answer": "C."}'),
    ("lower-case", '{"reasoning": "r", "answer": "c"}'),
    ("letter-colon", '{"reasoning": "r", "answer": "C: gamma"}'),
    ("sentence", '{"reasoning": "r", "answer": "The answer is C"}'),
    ("leading-space", '{"reasoning": "r", "answer": " C"}'),
    ("wrong-letter", '{"reasoning": "r", "answer": "B"}'),
    ("wrong-letter-paren", '{"reasoning": "r", "answer": "B) beta"}'),
    ("choice-text", '{"reasoning": "r", "answer": "gamma"}'),
    ("empty", '{"reasoning": "r", "answer": ""}'),
    ("null", '{"reasoning": "r", "answer": null}'),
    ("missing", '{"reasoning": "r"}'),
    ("fenced", f'{FENCE}json\n{{\n    "reasoning": "fenced",\n    "answer": "C"\n}}\n{FENCE}'),
    ("two-objects", '{"reasoning": "first", "answer": "A"} {"reasoning": "second", "answer": "C"}'),
    ("unquoted-value", '{"reasoning": "r", "answer": C}'),
    ("unquoted-keys", '{reasoning: "r", answer: C}'),
    ("unquoted-key-quoted-value", '{reasoning: "r", answer: "C"}'),
    ("list-answer", '{"reasoning": "r", "answer": ["C)"]}'),
    ("braces-in-reasoning", '{"reasoning": "set {a} and {", "answer": "C"}'),
    ("newlines-in-reasoning", '{"reasoning": "one\ntwo\nthree", "answer": "C"}'),
    ("no-json", "I would pick C."),
    ("no-json-answer-colon", "answer: C"),
    ("empty-output", ""),
]

GSM_ANCHOR = {"output": ['{"reasoning": "anchor", "answer": "1"}'], "answer": "# 1"}
MMLU_ANCHOR = {"output": ['{"reasoning": "anchor", "answer": "C"}']}


def gsm_item(name: str, output: str, answer: str) -> dict:
    return {"id": f"gsm-{name}", "question": "q", "output": [output], "answer": answer}


def mmlu_item(name: str, output: str) -> dict:
    return {
        "id": f"mmlu-{name}",
        "question": "q",
        "output": [output],
        "choices": MMLU_CHOICES,
        "correct_answer": "gamma",
    }


def case_items(task: str) -> dict[str, list[dict]]:
    """File stem -> items: one file per case (case + anchor) and `all-cases`."""
    if task == "gsm":
        items = {name: gsm_item(name, out, ref) for name, out, ref in GSM_CASES}
        anchor = {"id": "anchor", "question": "q", **GSM_ANCHOR}
    else:
        items = {name: mmlu_item(name, out) for name, out in MMLU_CASES}
        anchor = {**mmlu_item("anchor", ""), **MMLU_ANCHOR}
    files = {f"case-{name}": [item, anchor] for name, item in items.items()}
    files["all-cases"] = list(items.values())
    return files


def write_case_files(task: str, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for stem, items in case_items(task).items():
        path = folder / f"{stem}.json"
        path.write_text(json.dumps(items, indent=1, ensure_ascii=False))
        out[stem] = path
    return out

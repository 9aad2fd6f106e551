"""ZeroEval's GSM and MMLU-Redux scoring, as at WildEval/ZeroEval 41d0bfd (2024-07-16), the
commit the SimPO Gemma-2 table's GSM and MMLU columns were made with (reimplemented;
upstream: src/evaluation/{eval_utils,gsm_eval,mcqa_eval}.py).

Per output (the model was asked for `{"reasoning": "...", "answer": "..."}`):
1. parse: the last complete top-level `{...}` (braces counted, strings ignored), newlines
   deleted (not replaced), through `json.loads`; if that fails or has no "answer", regex
   fallbacks on the raw text, per key: `"key": "value"` (quoted; then the same with
   "broken quotes", which finds the same spans), then `"key": value` (unquoted value up
   to "," or whitespace), then `key: value` (unquoted key). The fallback's fields replace
   the JSON's entirely.
2. GSM: no "answer" key -> no answer. Else answer = str(value); both it and the reference
   (with "#" removed) are sanitized: "$" dropped, stripped, "," dropped, and when the text
   holds "/" it is evaluated to str(float(...)). Correct when the first `-?\\d+(\\.\\d+)?` of
   each exists and the two are equal as floats.
3. MMLU-Redux: no "answer", null or "" -> no answer. Correct when the answer equals the
   reference's letter (A + index of `correct_answer` in `choices`) or contains "<letter>)".

acc = correct / total x 100 and no_answer = unanswered / total x 100 (unanswered items
count as wrong); reason_length (the table's "Length") = mean len(reasoning) over the
answered items (reasoning "" when absent). Numbers are rounded to 2 decimals as upstream
prints them.

Quirks reproduced (named so they can be seen): MMLU answers "C." and "c" are wrong;
braces inside the reasoning can hide the JSON; the reasoning's newlines are deleted before
its length is taken (JSON path only); the first number decides ("18 or 20" is 18).
`mmlu_match="lenient"` is the corrected letter rule (case-insensitive, "(C)", "C.", "C:").

Where upstream crashes or is unsafe, repro decides (documented, tested):
- GSM fractions: upstream calls eval() on the model's answer. Here only arithmetic over
  numeric literals (+ - * / // % **, parentheses, unary signs) is computed, through the
  ast, with the same Python number semantics, so every arithmetic answer gives upstream's
  value; anything else (names, calls: upstream would run them) stays text.
- An MMLU answer that is a JSON number or boolean (upstream: TypeError) is compared as its
  text (3 -> "3"): answered, and wrong unless that text is the letter.
- A reasoning that is null (upstream: TypeError) has length 0; a number, its text length.
- A file where no item parses (upstream: ZeroDivisionError) has reason_length None and a
  note. An output given as a plain string (upstream takes its first character) is used
  whole; an empty output list counts as no answer. An output that is neither a string nor a
  list of strings (a number, an object, null; upstream: TypeError) is one line naming the item.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from repro.errors import ReproError, unknown

TASKS = ("gsm", "mmlu-redux")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MMLU_MATCH = ("zeroeval", "lenient")
FIRST_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_LENIENT_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:]?(?:\s|$)")


# --------------------------------------------------------------------------- parsing


def last_complete_json(text: str) -> dict[str, Any] | None:
    """The last top-level {...} of `text` (braces counted, even inside strings), newlines
    deleted, parsed with json.loads; None when there is none or it does not parse."""
    depth = 0
    start: int | None = None
    last: str | None = None
    for i, char in enumerate(text):
        if char == "{":
            if depth == 0 and start is None:
                start = i
            depth += 1
        elif char == "}" and depth:  # an unmatched "}" is ignored
            depth -= 1
            if depth == 0:
                last = text[start : i + 1]
                start = None
    if not last:
        return None
    try:
        value = json.loads(last.replace("\n", ""))
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def regex_fields(text: str, keys: tuple[str, ...] = ("reasoning", "answer")) -> dict[str, str]:
    """Upstream's fallback: each key's value by regex, quoted, then unquoted value, then
    unquoted key. A key that none matches is absent."""
    found: dict[str, str] = {}
    for key in keys:
        match = re.search(rf'"{key}"\s*:\s*"([^"]*?)"', text) or re.search(
            rf'"{key}"\s*:\s*"(.*?)"', text, re.DOTALL
        )
        if not match:
            match = re.search(rf'"{key}"\s*:\s*([^,\s]*)', text) or re.search(rf"{key}\s*:\s*([^,\s]*)", text)
        if match:
            found[key] = match.group(1)
    return found


def parse_output(text: str) -> dict[str, Any]:
    """The fields ZeroEval reads from one output: the last JSON object when it has an
    "answer", else the regex fallback's (possibly empty) fields."""
    parsed = last_complete_json(text)
    if parsed is None or "answer" not in parsed:
        return regex_fields(text)
    return parsed


# --------------------------------------------------------------------------- arithmetic

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_EXPONENT = 10_000  # beyond this upstream's eval would compute (or hang); repro gives up


class _NotArithmetic(Exception):
    pass


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):  # bool and complex excluded
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise _NotArithmetic
        return _BINARY[type(node.op)](left, right)
    raise _NotArithmetic


def arithmetic(text: str) -> float | None:
    """float(eval(text)) for arithmetic over numeric literals, computed without eval; None
    where upstream's eval raises or the text is not such arithmetic."""
    try:
        # eval() skips leading spaces and tabs of a string; the parser does not
        tree = ast.parse(text.lstrip(" \t"), mode="eval")
        return float(_evaluate(tree))
    except (_NotArithmetic, SyntaxError, ValueError, ArithmeticError, TypeError, RecursionError, MemoryError):
        return None


def sanitize_math_answer(answer: str) -> str:
    """ZeroEval's santize_math_answers: "$" and "," dropped, fractions turned into floats."""
    answer = answer.replace("$", "").strip().replace(",", "")
    if "/" in answer:
        value = arithmetic(answer)
        if value is not None:
            answer = str(value)
    return answer


def first_number(text: str) -> float | None:
    match = FIRST_NUMBER.search(text)
    return float(match.group()) if match else None


# --------------------------------------------------------------------------- per item


def answer_text(value: Any) -> str:
    """GSM's str(answer): 18 -> "18", 18.5 -> "18.5", null -> "None" (wrong), as upstream."""
    return str(value)


def gsm_correct(answer: Any, reference: str) -> bool:
    model = first_number(sanitize_math_answer(answer_text(answer)))
    truth = first_number(sanitize_math_answer(reference.replace("#", "").strip()))
    return model is not None and truth is not None and model == truth


def reference_letter(choices: list[str], correct_answer: str) -> str:
    try:
        return LETTERS[choices.index(correct_answer)]
    except ValueError:
        raise ReproError(f"correct_answer {correct_answer!r} is not one of the choices") from None


def mmlu_correct(answer: Any, letter: str, match: str = "zeroeval") -> bool:
    if isinstance(answer, bool | int | float):  # upstream raises TypeError: compare its text
        answer = str(answer)
    if match == "lenient" and isinstance(answer, str):
        found = _LENIENT_LETTER.match(answer.strip())
        if found and found.group(1).upper() == letter:
            return True
    return answer == letter or f"{letter})" in answer


def mmlu_unanswered(fields: dict[str, Any]) -> bool:
    return "answer" not in fields or fields["answer"] is None or fields["answer"] == ""


def reasoning_length(value: Any) -> int:
    """len(reasoning) as upstream (str, list and dict alike); null -> 0; numbers -> text length."""
    if value is None:
        return 0
    if isinstance(value, str | list | dict):
        return len(value)
    return len(str(value))


def output_text(item: dict[str, Any]) -> str:
    """The generation of one item: output[0] (ZeroEval's list of strings) or a plain string.
    Anything else (a number, an object, null, a list holding one) is no generation: an error."""
    output = item.get("output")
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(o, str) for o in output):
        return output[0] if output else ""
    raise ReproError(f"'output' is {json.dumps(output)[:40]}, not a string or a list of strings")


# --------------------------------------------------------------------------- per file


@dataclass
class Score:
    model: str
    task: str
    acc: float  # % correct of all items
    no_answer: float  # % of items without a parsed answer
    total: int
    reason_length: float | None  # mean characters of the reasoning over answered items
    correct: int
    unanswered: int
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _two(value: float) -> float:
    return float(f"{value:.2f}")  # upstream prints f"{x:.2f}"


def check_task(task: str) -> str:
    if task not in TASKS:
        raise unknown("ZeroEval task", task, TASKS)
    return task


def score_items(
    items: list[dict[str, Any]], task: str, *, model: str = "model", mmlu_match: str = "zeroeval"
) -> Score:
    """Score one model's ZeroEval-format items (see the module docstring for the rules)."""
    check_task(task)
    if mmlu_match not in MMLU_MATCH:
        raise unknown("MMLU letter rule", mmlu_match, MMLU_MATCH)
    if not items:
        raise ReproError(f"{model}: no items to score")
    correct = unanswered = 0
    lengths: list[int] = []
    ids: set[Any] = set()
    for index, item in enumerate(items):
        where = f"{model} item {index} ({item.get('id', 'no id')})"
        if "output" not in item:
            raise ReproError(f"{where}: no 'output' (not a ZeroEval result item)")
        if "id" in item:  # an item twice would count twice
            if str(item["id"]) in ids:
                raise ReproError(f"{where}: id {item['id']} appears twice")
            ids.add(str(item["id"]))
        # the reference is checked before the answer is parsed: a file of the other task would
        # otherwise score 0% with every item "unanswered"
        try:
            text = output_text(item)
        except ReproError as exc:
            raise ReproError(f"{where}: {exc}") from None
        fields = parse_output(text)
        if task == "gsm":
            reference = item.get("answer")
            if not isinstance(reference, str):
                raise ReproError(f"{where}: GSM items need the reference 'answer' as a string")
            if "answer" not in fields:
                unanswered += 1
                continue
            correct += gsm_correct(fields["answer"], reference)
        else:
            choices, truth = item.get("choices"), item.get("correct_answer")
            if not isinstance(choices, list) or truth is None:
                raise ReproError(f"{where}: MMLU-Redux items need 'choices' and 'correct_answer'")
            if mmlu_unanswered(fields):
                unanswered += 1
                continue
            try:
                letter = reference_letter(choices, truth)
            except ReproError as exc:
                raise ReproError(f"{where}: {exc}") from None
            correct += mmlu_correct(fields["answer"], letter, mmlu_match)
        lengths.append(reasoning_length(fields.get("reasoning", "")))
    total = len(items)
    return Score(
        model=model,
        task=task,
        acc=_two(correct / total * 100),
        no_answer=_two(unanswered / total * 100),
        total=total,
        reason_length=_two(sum(lengths) / len(lengths)) if lengths else None,
        correct=correct,
        unanswered=unanswered,
        note=None if lengths else "no output parsed: reason_length undefined (upstream divides by zero)",
    )


def model_name(path: Path) -> str:
    """The model a result file is for: its file name without .json (upstream's rule)."""
    return path.name.replace(".jsonl", "").replace(".json", "")


def read_items(path: Path) -> list[dict[str, Any]]:
    """A JSON list of items, or JSON lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReproError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReproError(f"{path}: unreadable ({exc})") from None
    try:
        if text.lstrip().startswith("["):
            items = json.loads(text)
        else:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ReproError(f"{path}: not a JSON list or JSON lines ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ReproError(f"{path}: expected a list of objects")
    return items


def score_file(path: Path, task: str, *, mmlu_match: str = "zeroeval") -> Score:
    return score_items(read_items(path), task, model=model_name(Path(path)), mmlu_match=mmlu_match)


def ranked(scores: list[Score]) -> list[Score]:
    """Upstream's order: by accuracy, best first."""
    return sorted(scores, key=lambda s: -s.acc)

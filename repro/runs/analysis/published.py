"""The paper's published scores (results/published/scores.csv) and their known errata."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import paths
from repro.config.validate import read_yaml
from repro.errors import ReproError, unknown
from repro.evaluation import benchmarks


def columns() -> tuple[str, ...]:
    """The score columns of scores.csv, as the benchmarks declare them, in the seed's table order."""
    return tuple(m.key for _, m in benchmarks.metrics() if m.published)


def column_titles() -> dict[str, str]:
    return {m.key: m.header for _, m in benchmarks.metrics() if m.published}


ID_COLUMNS = ("table", "setting", "method", "model", "model_id")


@dataclass
class Row:
    table: str  # which seed table: v0.1, v0.2 or gemma2
    setting: str
    method: str
    model: str  # the row label as the seed prints it
    model_id: str
    scores: dict[str, float | None]
    text: dict[str, str]  # each cell exactly as the seed prints it ("88.0", not 88)
    errata: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in ID_COLUMNS}
        out.update(self.scores)
        out["errata"] = self.errata
        return out


def _number(text: str, where: str) -> float | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise ReproError(f"{where}: '{text}' is not a number") from None


def load(directory: Path | None = None) -> list[Row]:
    directory = directory or paths.PUBLISHED
    path = directory / "scores.csv"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            metrics = columns()
            missing = set(ID_COLUMNS + metrics) - set(reader.fieldnames or ())
            if missing:
                raise ReproError(f"{path}: missing columns {', '.join(sorted(missing))}")
            rows = [
                Row(
                    **{k: raw[k] for k in ID_COLUMNS},
                    scores={m: _number(raw[m], f"{path}:{i + 2} {m}") for m in metrics},
                    text={m: raw[m] for m in metrics},
                )
                for i, raw in enumerate(reader)
            ]
    except FileNotFoundError:
        raise ReproError(f"{path}: no such file") from None
    _attach_errata(rows, directory / "errata.yaml")
    return rows


def _attach_errata(rows: list[Row], path: Path) -> None:
    entries = read_yaml(path) if path.exists() else []
    for entry in entries or []:
        matches = [r for r in rows if r.setting == entry["setting"] and r.method == entry["method"]]
        if len(matches) != 1:
            raise ReproError(
                f"{path}: erratum for {entry['setting']}/{entry['method']} matches {len(matches)} rows"
            )
        row = matches[0]
        for cell, values in entry["cells"].items():
            current = row.scores.get(cell, getattr(row, cell, None))
            if current != values["seed"]:
                raise ReproError(
                    f"{path}: erratum {entry['setting']}/{entry['method']}/{cell} says the seed has "
                    f"{values['seed']}, the table has {current}"
                )
            row.errata.append(
                {
                    "cell": cell,
                    "seed": values["seed"],
                    "alternative": values["alternative"],
                    "source": entry["source"],
                    "note": entry["note"],
                }
            )


def select(rows: list[Row], setting: str | None = None, method: str | None = None) -> list[Row]:
    if setting is not None:
        settings = {r.setting for r in rows}
        if setting not in settings:
            raise unknown("setting in the published tables", setting, settings)
        rows = [r for r in rows if r.setting == setting]
    if method is not None:
        methods = {r.method for r in rows}
        if method not in methods:
            raise unknown("method in the published tables", method, methods)
        rows = [r for r in rows if r.method == method]
    return rows


def lookup(rows: list[Row], setting: str, method: str, metric: str) -> float | None:
    """One published cell, or None when the paper has no such number."""
    for row in rows:
        if row.setting == setting and row.method == method:
            return row.scores.get(metric)
    return None


def released_as(rows: list[Row], setting: str, model: str) -> str | None:
    """The method a published row of `setting` lists the hub checkpoint `model` under (the
    authors' released models, scores.csv's model_id; hub ids compare case-blind), or None."""
    for row in rows:
        if row.setting == setting and row.model_id.lower() == model.lower():
            return row.method
    return None


def settings_releasing(rows: list[Row], model: str) -> list[str]:
    """The settings whose published rows list the hub checkpoint `model`."""
    return sorted({r.setting for r in rows if r.model_id.lower() == model.lower()})

"""Methods: the paper's preference-optimization losses as recipes/methods.yaml declares them.

A method fixes its loss, whether it needs a reference model, how log-probs are aggregated, its
hyperparameters (type, range, default, source), its named search grids, and its traits as
data: `derived` values the run computes from others (SimPO: gamma = beta x gamma_beta_ratio)
and `mismatched_pairs` (KTO: its reference point needs mismatched prompt/completion pairs).
Code reads the trait, never the method's name.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import paths
from repro.config.validate import check_choice, check_keys, check_range, coerce, read_yaml
from repro.errors import ReproError, ReproWarning, unknown


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: str  # "float" | "int" | "str"
    default: Any
    source: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    above: float | None = None  # an exclusive minimum (beta = 0 turns every loss into a constant)


def drop_float_noise(x: float) -> float:
    """Drop float noise from derived values (10 x 0.3 = 3.0000000000000004)."""
    return float(f"{x:.12g}")


@dataclass(frozen=True)
class Derived:
    """A hyperparameter the run computes: the product of `factors` (methods.yaml `derived`).
    A search grid may give it directly; the grid's point then solves for the last factor."""

    name: str
    factors: tuple[str, ...]
    source: str

    def value(self, hyperparameters: dict[str, Any]) -> float:
        return drop_float_noise(math.prod(float(hyperparameters[f]) for f in self.factors))

    def solve_last(self, point: dict[str, float]) -> None:
        """An absolute value on a grid point becomes its last factor (gamma -> gamma_beta_ratio)."""
        others = math.prod(point[f] for f in self.factors[:-1])
        point[self.factors[-1]] = drop_float_noise(point.pop(self.name) / others)


@dataclass(frozen=True)
class SearchGrid:
    """A named hyperparameter grid with its source; an axis may be a derived value (SimPO's
    absolute margin `gamma`), which each point turns back into the factor it derives from."""

    name: str
    source: str
    axes: dict[str, list[float]]
    derived: dict[str, Derived] = field(default_factory=dict)

    def points(self) -> list[dict[str, float]]:
        """Every grid point as run overrides; an absolute gamma becomes gamma_beta_ratio."""
        points = []
        for values in itertools.product(*self.axes.values()):
            point = dict(zip(self.axes, values, strict=True))
            for derived in self.derived.values():
                if derived.name in point:
                    derived.solve_last(point)
            points.append(point)
        return points


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    formula: str
    reference_model: bool
    log_probs: str  # "mean" or "sum"
    hyperparameters: dict[str, Hyperparameter]
    search_grids: dict[str, SearchGrid]
    aliases: tuple[str, ...] = ()
    derived: dict[str, Derived] = field(default_factory=dict)
    # KTO: the loss's reference point needs log-probs of mismatched (prompt, completion) pairs.
    mismatched_pairs: bool = False

    @property
    def search_grid(self) -> dict[str, list[float]]:
        """The paper's grid (App. B, Table 7)."""
        return self.search_grids["paper"].axes if "paper" in self.search_grids else {}


LEARNING_RATE_MAX = 1e-3  # above this preference optimization diverges (seed README: 1e-5 already degrades)


def _parse_method(name: str, data: Any, where: str) -> Method:
    if not isinstance(data, dict):
        raise ReproError(f"{where}: method '{name}' must be a mapping")
    check_keys(
        data,
        [
            "title",
            "formula",
            "reference_model",
            "log_probs",
            "hyperparameters",
            "search_grids",
            "aliases",
            "derived",
            "mismatched_pairs",
        ],
        f"{where}: method '{name}'",
    )
    specs = {}
    for hp_name, spec in (data.get("hyperparameters") or {}).items():
        at = f"{where}: {name}.{hp_name}"
        if not isinstance(spec, dict):
            raise ReproError(f"{at}: expected a mapping")
        check_keys(spec, ["type", "default", "source", "min", "max", "above", "choices"], at)
        hp_type = spec.get("type", "float")
        check_choice(hp_type, ("float", "int", "str"), f"{at}.type")
        choices = tuple(spec["choices"]) if spec.get("choices") else None
        specs[hp_name] = Hyperparameter(
            name=hp_name,
            type=hp_type,
            default=spec.get("default"),
            source=str(spec.get("source", "")),
            min=spec.get("min"),
            max=spec.get("max"),
            choices=choices,
            above=spec.get("above"),
        )
    derived = _parse_derived(name, data.get("derived") or {}, specs, where)
    log_probs = data.get("log_probs", "sum")
    check_choice(log_probs, ("mean", "sum"), f"{where}: {name}.log_probs")
    return Method(
        name=name,
        title=str(data.get("title", name)),
        formula=str(data.get("formula", "")),
        reference_model=bool(data.get("reference_model", False)),
        log_probs=log_probs,
        hyperparameters=specs,
        search_grids=_parse_grids(name, data.get("search_grids") or {}, specs, derived, where),
        aliases=tuple(data.get("aliases") or ()),
        derived=derived,
        mismatched_pairs=coerce(
            data.get("mismatched_pairs", False), bool, f"{where}: {name}.mismatched_pairs"
        ),
    )


def _parse_derived(
    method: str, data: Any, specs: dict[str, Hyperparameter], where: str
) -> dict[str, Derived]:
    """`derived: {NAME: {times: [A, B], source: ...}}`: NAME = A x B, both hyperparameters."""
    if not isinstance(data, dict):
        raise ReproError(f"{where}: {method}.derived: expected a mapping")
    derived = {}
    for name, spec in data.items():
        at = f"{where}: {method}.derived.{name}"
        if not isinstance(spec, dict):
            raise ReproError(f"{at}: expected a mapping")
        check_keys(spec, ["times", "source"], at)
        factors = spec.get("times")
        if not isinstance(factors, list) or len(factors) < 2:
            raise ReproError(f"{at}.times: expected a list of two or more hyperparameters")
        for factor in factors:
            check_keys({factor: None}, specs, f"{at}.times")
        if name in specs:
            raise ReproError(f"{at}: '{name}' is already a hyperparameter")
        derived[str(name)] = Derived(str(name), tuple(map(str, factors)), str(spec.get("source", "")))
    return derived


def _parse_grids(
    method: str, data: Any, specs: dict[str, Hyperparameter], derived: dict[str, Derived], where: str
) -> dict[str, SearchGrid]:
    """Named grids: a `source` and axes of numbers over the method's hyperparameters (plus
    learning_rate, and derived values with the factors they need: SimPO's `gamma` with `beta`)."""
    if not isinstance(data, dict):
        raise ReproError(f"{where}: {method}.search_grids: expected a mapping of named grids")
    grids = {}
    for grid_name, grid in data.items():
        at = f"{where}: {method}.search_grids.{grid_name}"
        if not isinstance(grid, dict) or not str(grid.get("source", "")).strip():
            raise ReproError(f"{at}: expected a mapping with a source")
        axes = {}
        allowed = [*specs, "learning_rate", *derived]
        for axis, values in grid.items():
            if axis == "source":
                continue
            check_keys({axis: None}, allowed, at)
            if not isinstance(values, list) or not values:
                raise ReproError(f"{at}.{axis}: expected a list of numbers")
            axes[axis] = [coerce(v, float, f"{at}.{axis}") for v in values]
        for value in derived.values():
            for factor in value.factors[:-1]:
                if value.name in axes and factor not in axes:
                    raise ReproError(f"{at}: an absolute {value.name} axis needs a {factor} axis")
        grids[str(grid_name)] = SearchGrid(str(grid_name), str(grid["source"]), axes, derived)
    return grids


def load_methods(path: Path | None = None) -> dict[str, Method]:
    path = path or paths.METHODS_FILE
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ReproError(f"{path}: expected a mapping of methods")
    return {name: _parse_method(name, spec, str(path)) for name, spec in data.items()}


def get_method(name: str, methods: dict[str, Method] | None = None) -> Method:
    methods = methods or load_methods()
    key = name.strip().lower()
    if key in methods:
        return methods[key]
    for method in methods.values():
        if key in method.aliases:
            return method
    raise unknown("method", name, methods)


def search_grid(method: str, name: str) -> SearchGrid:
    """A method's named search grid (recipes/methods.yaml `search_grids`)."""
    the_method = get_method(method)
    if name not in the_method.search_grids:
        raise unknown(f"search grid of {the_method.name}", name, the_method.search_grids)
    return the_method.search_grids[name]


def check_hyperparameters(method: Method, values: dict, where: str) -> dict[str, Any]:
    """Validate one method's hyperparameter values (plus learning_rate) against its spec."""
    allowed = [*method.hyperparameters, "learning_rate", "log_probs"]
    check_keys(values, allowed, where)
    checked = {}
    for key, value in values.items():
        at = f"{where}.{key}"
        if key == "learning_rate":
            checked[key] = check_learning_rate(coerce(value, float, at), at)
            continue
        if key == "log_probs":
            checked[key] = coerce(value, str, at)
            check_choice(checked[key], ("mean", "sum"), at)
            continue
        spec = method.hyperparameters[key]
        tp = {"float": float, "int": int, "str": str}[spec.type]
        value = coerce(value, tp, at)
        if spec.type != "str":
            check_range(value, spec.min, spec.max, at)
            if spec.above is not None and value <= spec.above:
                raise ReproError(f"{at}: must be above {spec.above:g}, got {value}")
        check_choice(value, spec.choices, at)
        checked[key] = value
    return checked


def check_learning_rate(value: float, where: str) -> float:
    if value <= 0:
        raise ReproError(f"{where}: learning rate must be positive, got {value}")
    if value > LEARNING_RATE_MAX:
        warnings.warn(
            f"{where}: learning rate {value:g} is above {LEARNING_RATE_MAX:g}; preference "
            "optimization usually diverges there (the paper searched 3e-7..1e-6)",
            ReproWarning,
            stacklevel=2,
        )
    return value

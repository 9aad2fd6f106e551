"""Fuzz recipe loading: whatever the YAML holds, the result is a run config that survives its strict
JSON unchanged, or a one-line ReproError that names what was wrong."""

from __future__ import annotations

import json
import warnings

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from repro import paths
from repro.config.methods import load_methods
from repro.config.resolution import resolve
from repro.config.runconfig import RunConfig
from repro.config.settings import get_setting, parse_setting
from repro.errors import ReproError

METHODS = load_methods()
BASE = yaml.safe_load((paths.SETTINGS / "llama3-base.yaml").read_text())
HANDBOOK_KEYS = [
    "model_name_or_path",
    "dataset_mixer",
    "dataset_splits",
    "beta",
    "gamma",
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def loads_or_fails_in_one_line(build, names: list[str]) -> None:
    """`build()` gives a RunConfig that round-trips through strict JSON (no NaN, no infinity), or
    raises a ReproError of one line that names one of `names` (the key, or the file)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = build()
    except ReproError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        assert any(name in message for name in names), message
        return
    text = json.dumps(config.to_json(), allow_nan=False)
    assert RunConfig.from_json(json.loads(text)) == config


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(key=st.sampled_from(sorted(BASE) + ["max_lenght", "methods"]), value=values)
# found by this test: a key holding a line break was quoted raw, an error of two lines
@example(key="evaluation", value={"\n": None})
@example(key="methods", value={"sim\npo": {}})
def test_mutated_setting_loads_or_fails_cleanly(key, value):
    data = dict(BASE)
    data[key] = value
    # `methods: {x: ...}` is refused as "unknown method 'x'"
    loads_or_fails_in_one_line(
        lambda: resolve(parse_setting(data, "fuzz", METHODS), METHODS["simpo"]), [key, key.removesuffix("s")]
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.dictionaries(st.sampled_from(HANDBOOK_KEYS), values, min_size=1, max_size=6))
def test_handbook_config_loads_or_fails_cleanly(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("hb") / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    loads_or_fails_in_one_line(
        lambda: resolve(get_setting(str(path), METHODS), METHODS["simpo"]), [*data, str(path)]
    )

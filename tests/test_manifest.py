"""manifest.json's one reader and writer (repro.runs.results.manifest): what a run wrote reads back as
written, an older repro's manifest reads with its missing keys None and its unknown keys kept,
and bad files are one line."""

from __future__ import annotations

import json

import pytest

from repro import io
from repro.errors import ReproError
from repro.runs.results.manifest import FILE, Manifest


def test_round_trip_keeps_unknown_keys(tmp_path):
    written = {
        "config": {"setting": "tiny"},
        "config_hash": "abc",
        "environment": {"lock": "cpu"},
        "history": [{"stages": [{"stage": "train", "seconds": 1.0}]}],
        "files": {"result.json": "0" * 64},
        "from_a_later_repro": {"x": 1},
    }
    io.write_json(tmp_path / FILE, written)
    manifest = Manifest.read(tmp_path)
    assert manifest.config == {"setting": "tiny"} and manifest.files == {"result.json": "0" * 64}
    assert manifest.judge is None and manifest.tokenizer_checks is None  # absent in this file
    assert manifest.extra == {"from_a_later_repro": {"x": 1}}
    manifest.write(tmp_path / "copy")
    again = json.loads((tmp_path / "copy" / FILE).read_text())
    assert {k: v for k, v in again.items() if v is not None} == written


def test_a_session_is_one_history_entry(tmp_path):
    manifest = Manifest(config={"setting": "tiny"})
    manifest.add_session([], code_version="v1", git={"commit": None, "dirty": None})
    manifest.add_session([{"stage": "evaluate", "seconds": 2.0}], code_version="v1", git={})
    assert [h["stages"][0]["stage"] for h in manifest.history] == ["record", "evaluate"]
    assert all(h["when"] and h["user"] for h in manifest.history)
    # a later session's environment is recorded where it is not the first one's
    manifest.environment = {"packages": {"torch": "2.13.0"}}
    manifest.add_session([], code_version="v2", git={}, environment={"packages": {"torch": "2.13.0"}})
    manifest.add_session([], code_version="v2", git={}, environment={"packages": {"torch": "2.14.0"}})
    assert "environment" not in manifest.history[2]
    assert manifest.history[3]["environment"] == {"packages": {"torch": "2.14.0"}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "not a JSON object"),
        ('{"config": [1]}', "'config' is not a mapping"),
        ('{"files": "x"}', "'files' is not a mapping"),
        ('{"files": {"result.json": 5}}', r"files\['result.json'\] is not a SHA-256 string"),
        ('{"history": {}}', "'history' is not a list"),
        ("{not json", "corrupt JSON"),
    ],
)
def test_a_bad_manifest_is_one_line(tmp_path, content, message):
    (tmp_path / FILE).write_text(content)
    with pytest.raises(ReproError, match=message) as caught:
        Manifest.read(tmp_path)
    assert "\n" not in str(caught.value) and str(tmp_path / FILE) in str(caught.value)
    assert Manifest.read_or_none(tmp_path) is None


def test_missing_manifest(tmp_path):
    assert Manifest.read_or_none(tmp_path) is None
    with pytest.raises(ReproError, match=FILE):
        Manifest.read(tmp_path)
    with pytest.raises(ReproError, match="no config"):
        Manifest().run_config("here")


def test_verify_says_why_a_manifest_cannot_be_read(tmp_path):
    """`repro verify` called a corrupt manifest "not a finished run", and a hash that was not a
    string ended in a TypeError."""
    from repro.runs.results import verify

    with pytest.raises(ReproError, match="no manifest.json with recorded file hashes"):
        verify.verify(tmp_path)
    for content, message in (("{not json", "corrupt JSON"), ('{"files": {"a": null}}', "is not a SHA-256")):
        (tmp_path / FILE).write_text(content)
        with pytest.raises(ReproError, match=message):
            verify.verify(tmp_path)

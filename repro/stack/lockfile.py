"""The project's lockfiles: `env/lock-cpu.txt` and `env/lock-gpu.txt`, read as data.

A lock is a pip requirements file written by `make lock` (uv pip compile --generate-hashes):
one `name==version` pin per package, each followed by its `--hash=sha256:...` lines and a
`# via` annotation. This module only reads them (standard library only, because
`env/locks.py` imports it before any virtual environment exists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from repro import paths
from repro.errors import ReproError
from repro.hashing import file_sha256

# The one target both locks are resolved for (env/locks.py).
PYTHON = "3.11"
PLATFORM = "x86_64-manylinux_2_28"

# `repro env check --lock NAME`: the names a user may type instead of a path.
NAMES = {"cpu": "lock-cpu.txt", "gpu": "lock-gpu.txt"}

# A comment line that names an optional package the lock cannot pin (flash-attn: source only).
_OPTIONAL = re.compile(r"^#\s*optional:\s*([A-Za-z0-9._-]+)==(\S+)\s*(.*)$")


def normalize(name: str) -> str:
    """PEP 503 name normalization: Liger_Kernel == liger-kernel."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    name: str  # normalized
    version: str
    hashes: list[str] = field(default_factory=list)  # "sha256:<hex>"
    via: list[str] = field(default_factory=list)  # who requires it (uv's annotation)


@dataclass
class Lock:
    path: Path
    pins: dict[str, Pin]
    optional: dict[str, tuple[str, str]]  # name -> (version, note), from `# optional:` lines

    @property
    def name(self) -> str:
        """`cpu` or `gpu` for the project's locks, the path otherwise."""
        for short, filename in NAMES.items():
            if self.path.resolve() == (paths.ENV / filename).resolve():
                return short
        return str(self.path)

    def versions(self) -> dict[str, str]:
        return {name: pin.version for name, pin in self.pins.items()}

    def sha256(self) -> str:
        return file_sha256(self.path)


def resolve(spec: str | Path | None) -> Path:
    """`cpu`, `gpu`, or a path; None means the CPU lock."""
    if spec is None:
        return paths.ENV / NAMES["cpu"]
    if str(spec) in NAMES:
        return paths.ENV / NAMES[str(spec)]
    path = Path(spec)
    if path.is_dir():
        raise ReproError(f"{spec}: is a directory, expected a file (a lockfile, or cpu or gpu)")
    if not path.is_file():
        raise ReproError(f"{spec}: no such lockfile (give cpu, gpu or a path)")
    return path


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations; keep each logical line's first line number."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
            if raw.lstrip().startswith("#"):  # as pip reads it: a comment never continues
                out.append((number, raw))
                continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        out.append((start, pending + raw))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def parse(text: str, path: Path) -> Lock:
    pins: dict[str, Pin] = {}
    marked: set[str] = set()  # pinned under an environment marker: one pin per environment
    optional: dict[str, tuple[str, str]] = {}
    last: Pin | None = None
    in_via = False
    for number, line in _logical_lines(text):
        stripped = line.strip()
        if stripped.startswith("#"):
            # uv's annotations: "# via x" or "# via" followed by "#   x" lines.
            body = stripped[1:].strip()
            match = _OPTIONAL.match(stripped)
            if match:
                optional[normalize(match[1])] = (match[2], match[3].strip())
            if last is not None and line.startswith("    #"):
                if body == "via" or body.startswith("via "):
                    rest = body[3:].strip()
                    last.via.extend([rest] if rest else [])
                    in_via = True
                elif in_via and body:
                    last.via.append(body)
            else:
                in_via = False
            continue
        in_via = False
        content = line.split(" #", 1)[0].strip()
        if not content:
            continue
        if content.startswith("-"):  # an option line (--find-links ...): not a pin
            continue
        requirement, *hashes = (part.strip() for part in content.split("--hash="))
        requirement, marker, _ = requirement.partition(";")  # an environment marker, if any
        requirement = requirement.strip()
        name, sep, version = requirement.partition("==")
        if not sep or not name or not version or " " in requirement or not all(hashes):
            raise ReproError(f"{path}:{number}: not a 'package==version' pin: '{content}'")
        if bad := next((h for h in hashes if not _HASH.fullmatch(h)), None):
            raise ReproError(f"{path}:{number}: '{bad}' is not a sha256:<64 hex digits> hash")
        last = Pin(normalize(name), version, hashes)
        if last.name in pins and not marker and last.name not in marked:
            # two pins without markers: pip would refuse the file, and the check saw only one
            raise ReproError(
                f"{path}:{number}: {last.name} is pinned twice ({pins[last.name].version}, {version})"
            )
        if marker:
            marked.add(last.name)
        pins[last.name] = last
    return Lock(path, pins, optional)


def read(spec: str | Path | None = None) -> Lock:
    path = resolve(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReproError(f"{path}: no such lockfile") from None
    except UnicodeDecodeError:
        raise ReproError(f"{path}: not a text file (a lockfile?)") from None
    lock = parse(text, path)
    if not lock.versions():
        raise ReproError(f"{path}: no 'package==version' pins (an empty lockfile?)")
    return lock

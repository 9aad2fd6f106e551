"""Are the installed files still the bytes that were installed?

The lock's hashes are checked when a wheel is installed (hash-checking mode). Afterwards each
installed distribution's RECORD (written by pip or uv at install time, PEP 376/627) lists every
file with its sha256; a file edited in site-packages shows up here as a mismatch.

Hashing a full environment (about 2.5 GB with torch and vLLM) takes seconds, so verified files
are remembered in a cache beside the interpreter, keyed by size, mtime and ctime: any write to
a file, or a change of its metadata, changes its ctime (which user tools cannot set back), so
a file whose key is unchanged still holds the bytes it held when it was hashed.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

_CACHE_NAME = ".repro-record-cache.json"


def _digest(path: str, algorithm: str) -> str:
    """RECORD's encoding: urlsafe base64 of the digest, without padding."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def _key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


class Verifier:
    """Checks distributions' files against their RECORD; `rehash=True` ignores the cache."""

    def __init__(self, cache_dir: Path | None = None, rehash: bool = False) -> None:
        self.cache_path = (cache_dir or Path(sys.prefix)) / _CACHE_NAME
        # dist-info folder -> "file|hash" -> [size, mtime_ns, ctime_ns] of the file when it matched
        self.cache: dict[str, dict[str, list[int]]] = {}
        if not rehash:
            try:
                self.cache = json.loads(self.cache_path.read_text())
            except (OSError, ValueError):
                self.cache = {}
        self.changed = False

    def check(self, dist: importlib.metadata.Distribution) -> list[str]:
        """Files of `dist` whose bytes differ from RECORD ("path (missing)" when gone)."""
        record = dist.read_text("RECORD")
        if record is None:
            return ["RECORD (missing)"]
        bad = []
        known = self.cache.setdefault(os.fspath(getattr(dist, "_path", dist.locate_file(""))), {})
        base = os.fspath(dist.locate_file(""))  # plain strings: 40,000 files, pathlib is slow here
        for row in csv.reader(record.splitlines()):
            if len(row) < 2 or not row[1]:
                continue  # RECORD itself and compiled files carry no hash
            if row[0].endswith(".pyc"):
                continue  # bytecode shipped in a wheel is rewritten by Python itself when stale
            algorithm, _, expected = row[1].partition("=")
            path = os.path.join(base, row[0])
            try:
                key = _key(os.stat(path))
            except FileNotFoundError:
                bad.append(f"{row[0]} (missing)")
                continue
            cache_key = f"{row[0]}|{row[1]}"
            if known.get(cache_key) == key:
                continue
            if _digest(path, algorithm) == expected:
                known[cache_key] = key
                self.changed = True
            else:
                known.pop(cache_key, None)
                bad.append(row[0])
        return bad

    def save(self) -> None:
        if not self.changed:
            return
        # Forget distributions that are gone (uninstalled, upgraded, a test's temporary folder).
        self.cache = {folder: files for folder, files in self.cache.items() if os.path.isdir(folder)}
        tmp = self.cache_path.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.cache))
            os.replace(tmp, self.cache_path)
        except OSError:  # a read-only environment: verify again next time
            tmp.unlink(missing_ok=True)

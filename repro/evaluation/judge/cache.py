"""Content-addressed judgment cache (SQLite): key = SHA-256 of the judge's identity and the full request.

The identity (the backend's `identity`: the kind of judge and the model asked for) is in the key
because the request alone does not say who answers it: the rule judge and an endpoint are sent
the same request, model name included, and must never answer for each other.

Several judging processes may share one cache file (threads of one gateway, or gateways of
several processes on one machine). Each judgment is paid for once: before asking the judge,
a gateway claims the key (a row in `claims`, taken in one IMMEDIATE transaction); the others
wait for the judgment instead of asking too. A claim whose holder died (same host, pid gone)
or that is older than STALE_CLAIM_SECONDS is taken over, so a killed process blocks nobody.

Journal mode: WAL on a local filesystem (readers never block the writer); WAL needs shared
memory between the processes, which a network filesystem cannot give, so there the cache
uses a rollback journal (DELETE), which relies on the filesystem's POSIX locks instead.
docs/scaling.md says which filesystems are safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from repro.errors import ReproError

# Request fields that do not change the answer and must not split the cache.
_IGNORED = ("stream", "user", "timeout")
_HOLDER = "SELECT host, pid, since FROM claims WHERE key = ?"
# A judge call (with its retries) that has not finished after this long is presumed dead.
STALE_CLAIM_SECONDS = 900.0


def request_key(request: dict[str, Any], judge: dict[str, Any]) -> str:
    """The cache key of `request` answered by the judge `judge` (its identity mapping)."""
    body = {k: v for k, v in request.items() if k not in _IGNORED}
    keyed = {"judge": judge, "request": body}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def journal_mode_for(path: Path) -> str:
    """WAL on a local filesystem, DELETE (rollback journal) on a network one."""
    from repro import filesystems

    return "DELETE" if filesystems.is_network(path) else "WAL"


class JudgmentCache:
    """Thread- and process-safe; one row per distinct request. Only successful responses are
    stored (and, where the caller names a pattern, only those that hold it: see the gateway)."""

    def __init__(self, path: Path, *, stale_after: float = STALE_CLAIM_SECONDS):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stale_after = stale_after
        self.host = socket.gethostname()
        self._lock = threading.Lock()
        # autocommit: every transaction below is explicit (BEGIN IMMEDIATE takes the write lock)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=60, isolation_level=None)
        self.journal_mode = journal_mode_for(self.path)
        try:
            self._set_journal_mode()
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, model TEXT, request TEXT, "
                "response TEXT, created REAL, judge TEXT)"
            )
        except sqlite3.DatabaseError as exc:  # "file is not a database": another file at the path
            if isinstance(exc, sqlite3.OperationalError):
                raise
            self._db.close()
            raise ReproError(
                f"{self.path}: not a judgment cache ({exc}); move it away or give --judge-cache another file"
            ) from None
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT, host TEXT, pid INTEGER, "
            "since REAL)"
        )
        # which judge answered (a cache written before judges were told apart has no such column;
        # another process may add it at the same moment)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(judgments)")}
        if "judge" not in columns:
            try:
                self._db.execute("ALTER TABLE judgments ADD COLUMN judge TEXT")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise

    def _set_journal_mode(self, wait: float = 60.0) -> None:
        """Set the journal mode, waiting for other processes that open the same new file. SQLite
        answers a journal-mode change that meets another connection's lock with "database is
        locked" at once, without its busy timeout: several judging processes started together
        on a new cache failed there (tests/test_judge.py)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                (mode,) = self._db.execute("PRAGMA journal_mode").fetchone()
                if mode.lower() != self.journal_mode.lower():  # WAL persists in the file
                    self._db.execute(f"PRAGMA journal_mode={self.journal_mode}")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01 + 0.04 * (uuid.uuid4().int % 100) / 100)  # apart from the others

    def get(self, key: str, *, newer_than: float | None = None) -> dict[str, Any] | None:
        """The stored judgment of `key` (`newer_than`: only one stored at or after that time)."""
        with self._lock:
            row = self._db.execute("SELECT response, created FROM judgments WHERE key = ?", (key,)).fetchone()
        if row is None or (newer_than is not None and row[1] < newer_than):
            return None
        return json.loads(row[0])

    def claim(self, key: str, *, replace_before: float | None = None) -> str | None:
        """Claim `key` for one judge call: a token to pass to put/release, or None when another
        live caller holds it or a judgment is stored (one stored before `replace_before` does
        not count: it is asked again and replaced)."""
        token = uuid.uuid4().hex
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                stored = self._db.execute("SELECT created FROM judgments WHERE key = ?", (key,)).fetchone()
                if stored and (replace_before is None or stored[0] >= replace_before):
                    return None
                held = self._db.execute(
                    "SELECT host, pid, since FROM claims WHERE key = ?", (key,)
                ).fetchone()
                if held and not self._stale(*held):
                    return None
                self._db.execute(
                    "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                    (key, token, self.host, os.getpid(), time.time()),
                )
                return token
            finally:
                self._db.execute("COMMIT")

    def _stale(self, host: str, pid: int, since: float) -> bool:
        if time.time() - since > self.stale_after:
            return True
        if host == self.host:  # on this machine a dead holder is known at once
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def release(self, key: str, token: str) -> None:
        """Give a claim up (the judge call failed): the next caller asks again."""
        with self._lock:
            self._db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, token))

    def put(
        self,
        key: str,
        request: dict[str, Any],
        response: dict[str, Any],
        token: str | None = None,
        judge: dict[str, Any] | None = None,
    ) -> None:
        """Store a judgment (and which judge gave it) and drop its claim, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO judgments (key, model, request, response, created, judge) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        request.get("model"),
                        json.dumps(request, ensure_ascii=False),
                        json.dumps(response, ensure_ascii=False),
                        time.time(),
                        json.dumps(judge, sort_keys=True) if judge is not None else None,
                    ),
                )
                self._db.execute("DELETE FROM claims WHERE key = ?", (key,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def wait(self, key: str, poll: float = 0.05) -> None:
        """Wait while another live caller holds the claim on `key` (it is asking the judge); the
        caller then looks for its answer, or claims the key itself."""
        while True:
            with self._lock:
                held = self._db.execute(
                    "SELECT host, pid, since FROM claims WHERE key = ?", (key,)
                ).fetchone()
            if held is None or self._stale(*held):
                return
            time.sleep(poll)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

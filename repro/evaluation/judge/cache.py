"""Content-addressed judgment cache (SQLite): key = SHA-256 of the judge's identity and the full request.

The identity (the backend's `identity`: the kind of judge and the model asked for) is in the key
because the request alone does not say who answers it: the rule judge and an endpoint are sent
the same request, model name included, and must never answer for each other.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

# Request fields that do not change the answer and must not split the cache.
_IGNORED = ("stream", "user", "timeout")


def request_key(request: dict[str, Any], judge: dict[str, Any]) -> str:
    """The cache key of `request` answered by the judge `judge` (its identity mapping)."""
    body = {k: v for k, v in request.items() if k not in _IGNORED}
    keyed = {"judge": judge, "request": body}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class JudgmentCache:
    """Thread-safe; one row per distinct request. Only successful responses are ever stored."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, model TEXT, request TEXT, "
            "response TEXT, created REAL)"
        )
        # which judge answered (a cache written before judges were told apart has no such column)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(judgments)")}
        if "judge" not in columns:
            self._db.execute("ALTER TABLE judgments ADD COLUMN judge TEXT")
        self._db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM judgments WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(
        self, key: str, request: dict[str, Any], response: dict[str, Any], judge: dict[str, Any] | None = None
    ) -> None:
        with self._lock:
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
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

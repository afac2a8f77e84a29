"""Stream state in an embedded SQLite file, so a restarted server continues every stream exactly.

Each `observe` is one transaction: the stream's new state and next sequence number, and the answer
given for that sequence number, are written together and committed *before* the answer is sent.
A server killed at any moment has therefore either applied an observe and recorded its answer, or
not applied it at all; the client re-sends its last sequence number after a restart and gets the
recorded answer (or the observe applied once). The file is opened in WAL mode with
``synchronous=NORMAL``: a committed observe survives the process being killed; ``sync="full"``
also survives the machine losing power, at an fsync per observe.

One server owns a state file at a time (an exclusive lock on ``PATH.lock``).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    state TEXT NOT NULL,
    next_seq INTEGER NOT NULL,
    points INTEGER NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replies (
    stream_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    digest TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (stream_id, seq)
);
"""


@dataclass
class StreamRecord:
    """One open stream as kept in memory (``state`` is the adapter's JSON-safe dict)."""

    id: str
    model: str
    model_version: str
    state: dict[str, Any]
    next_seq: int
    points: int
    created: float
    last_used: float


@dataclass
class Reply:
    digest: str
    body: str


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/seqshape/streams.sqlite3`` (default ``~/.local/state/...``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "seqshape" / "streams.sqlite3"


class StreamStore:
    """The SQLite file behind the streams; every method is one short transaction."""

    def __init__(self, path: str | os.PathLike, *, sync: str = "normal") -> None:
        if sync not in ("normal", "full"):
            raise ConfigError(f"state sync: expected 'normal' or 'full', got {sync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(str(self.path) + ".lock", "a+")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise ConfigError(
                f"{self.path}: the state file is in use by another seqshape server "
                "(give each server its own --state PATH)"
            ) from None
        self._mutex = threading.Lock()
        try:
            self.db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=5.0
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={sync.upper()}")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self.db.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            elif row[0] != str(SCHEMA_VERSION):
                raise ConfigError(
                    f"{self.path}: state schema version {row[0]} is not supported "
                    f"(this seqshape writes {SCHEMA_VERSION})"
                )
        except sqlite3.DatabaseError as e:
            self.close()
            raise ConfigError(f"{self.path}: not a usable seqshape state file ({e})") from None
        except ConfigError:
            self.close()
            raise

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
            self.db = None
        if not self._lock_file.closed:
            self._lock_file.close()

    # -- reads ---------------------------------------------------------------------------------
    def load_all(self) -> list[StreamRecord]:
        with self._mutex:
            rows = self.db.execute(
                "SELECT id, model, model_version, state, next_seq, points, created, last_used "
                "FROM streams"
            ).fetchall()
        return [
            StreamRecord(
                id=r[0],
                model=r[1],
                model_version=r[2],
                state=json.loads(r[3]),
                next_seq=r[4],
                points=r[5],
                created=r[6],
                last_used=r[7],
            )
            for r in rows
        ]

    def reply(self, stream_id: str, seq: int) -> Reply | None:
        with self._mutex:
            row = self.db.execute(
                "SELECT digest, body FROM replies WHERE stream_id=? AND seq=?", (stream_id, seq)
            ).fetchone()
        return None if row is None else Reply(digest=row[0], body=row[1])

    # -- writes --------------------------------------------------------------------------------
    def create(self, rec: StreamRecord) -> None:
        with self._mutex:
            self.db.execute(
                "INSERT INTO streams VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.id,
                    rec.model,
                    rec.model_version,
                    json.dumps(rec.state, allow_nan=False),
                    rec.next_seq,
                    rec.points,
                    rec.created,
                    rec.last_used,
                ),
            )

    def commit_observe(
        self,
        stream_id: str,
        *,
        state: dict[str, Any],
        seq: int,
        points: int,
        last_used: float,
        digest: str,
        body: str,
        keep_replies: int,
    ) -> None:
        """Advance a stream past ``seq`` and record the answer to ``seq``, in one transaction.

        Answers older than the last ``keep_replies`` are pruned every ``keep_replies`` seqs (so
        at most twice that many are on disk); the server refuses to replay them either way.
        """
        state_text = json.dumps(state, allow_nan=False, separators=(",", ":"))
        with self._mutex:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "UPDATE streams SET state=?, next_seq=?, points=?, last_used=? WHERE id=?",
                    (state_text, seq + 1, points, last_used, stream_id),
                )
                db.execute(
                    "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                    (stream_id, seq, digest, body),
                )
                if seq % keep_replies == 0:
                    db.execute(
                        "DELETE FROM replies WHERE stream_id=? AND seq<=?",
                        (stream_id, seq - keep_replies),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def delete(self, stream_id: str) -> None:
        with self._mutex:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM streams WHERE id=?", (stream_id,))
                db.execute("DELETE FROM replies WHERE stream_id=?", (stream_id,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def delete_idle(self, before: float) -> int:
        """Delete every stream last used before ``before`` (wall-clock seconds); return how many."""
        with self._mutex:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                ids = [
                    r[0] for r in db.execute("SELECT id FROM streams WHERE last_used<?", (before,))
                ]
                db.executemany("DELETE FROM streams WHERE id=?", [(i,) for i in ids])
                db.executemany("DELETE FROM replies WHERE stream_id=?", [(i,) for i in ids])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(ids)

"""Stream state in an embedded SQLite file, so a restarted server continues every stream exactly.

Each `observe` is one transaction: the stream's new state and next sequence number, and the answer
given for that sequence number, are written together and committed *before* the answer is sent.
A server killed at any moment has therefore either applied an observe and recorded its answer, or
not applied it at all; the client re-sends its last sequence number after a restart and gets the
recorded answer (or the observe applied once).

The file is opened in WAL mode with ``synchronous=NORMAL``: a commit appends to the write-ahead
log without an fsync, so a committed observe survives the server process being killed (the
operating system holds the write), but the last observes before a power loss or kernel crash may
be rolled back — the file stays consistent either way (the log is fsynced before each checkpoint).
``sync="full"`` fsyncs the log at every commit: a committed observe then survives a power loss too,
at the price of an fsync per observe. Checkpoints (copying the log into the database file, with
its fsyncs) run on a background thread with a connection of its own, so the thread answering
requests never waits for a disk flush; the log is restarted when it grows past a bound.

One server owns a state file at a time (an exclusive lock on ``PATH.lock``). The file holds users'
data: it is created with mode 0600 whatever the umask (SQLite gives its -wal and -shm files the
same mode).
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
CHECKPOINT_EVERY = 0.2  # seconds between the background thread's checkpoints
# the writer checkpoints itself only when the log holds this many pages (~64 MB): the bound on
# the log under a load so steady that the background checkpoints never catch up with it
WAL_BOUND_PAGES = 16_384

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
) WITHOUT ROWID;
"""


@dataclass
class StreamRecord:
    """One open stream as kept in memory.

    ``state`` is the adapter's JSON-safe dict as stored (kept until the adapter turns it into
    ``live``, its working form, on the stream's first observe after a restart).
    """

    id: str
    model: str
    model_version: str
    state: dict[str, Any] | None
    next_seq: int
    points: int
    created: float
    last_used: float
    live: Any = None


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


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 whatever the umask (SQLite takes an empty file for an
    empty database, and gives its -wal and -shm files the database file's mode): the state holds
    users' data. An existing file keeps its mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as e:
        raise ConfigError(f"{path}: cannot create the state file ({e.strerror})") from None
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits from the mode os.open was given
    finally:
        os.close(fd)


class StreamStore:
    """The SQLite file behind the streams; every method is one short transaction.

    Stream states arrive and leave as JSON text / dicts (the adapters' `dump_state` form).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        sync: str = "normal",
        checkpoint_every: float = CHECKPOINT_EVERY,
    ) -> None:
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
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self.checkpoint_errors = 0
        try:
            _create_private(self.path)
            self.db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=5.0
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={sync.upper()}")
            # checkpoints are the background thread's job; this is only the bound on the log
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_BOUND_PAGES}")
            self.db.execute(f"PRAGMA journal_size_limit={WAL_BOUND_PAGES * 4096}")
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
        if checkpoint_every > 0:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop,
                args=(checkpoint_every, sync),
                name="seqshape-checkpoint",
                daemon=True,
            )
            self._checkpointer.start()

    def _checkpoint_loop(self, every: float, sync: str) -> None:
        """Copy the write-ahead log into the database file every ``every`` seconds (PASSIVE: it
        never blocks the writer; the sqlite3 module releases the GIL while it works)."""
        db = sqlite3.connect(str(self.path), isolation_level=None, timeout=0.0)
        try:
            db.execute(f"PRAGMA synchronous={sync.upper()}")
            while not self._stop.wait(every):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    self.checkpoint_errors += 1  # the writer's bound still checkpoints
        finally:
            db.close()

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
            self._checkpointer = None
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

    def state(self, stream_id: str) -> tuple[dict[str, Any], int, int] | None:
        """(state, next_seq, points) as last committed for one stream, or None."""
        with self._mutex:
            row = self.db.execute(
                "SELECT state, next_seq, points FROM streams WHERE id=?", (stream_id,)
            ).fetchone()
        return None if row is None else (json.loads(row[0]), row[1], row[2])

    def reply(self, stream_id: str, seq: int) -> Reply | None:
        with self._mutex:
            row = self.db.execute(
                "SELECT digest, body FROM replies WHERE stream_id=? AND seq=?", (stream_id, seq)
            ).fetchone()
        return None if row is None else Reply(digest=row[0], body=row[1])

    # -- writes --------------------------------------------------------------------------------
    def create(self, rec: StreamRecord, state_text: str) -> None:
        with self._mutex:
            self.db.execute(
                "INSERT INTO streams VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.id,
                    rec.model,
                    rec.model_version,
                    state_text,
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
        state_text: str,
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

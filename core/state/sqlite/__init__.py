"""The embedded default store: one SQLite file in WAL mode, used from one worker thread.

SQLite calls can block (file locks, fsync at checkpoints), so none runs on the event
loop: each ``read``/``write`` is one hop to a worker thread (a limiter of one keeps the
connection to one thread at a time). A ``write`` is one ``BEGIN IMMEDIATE`` ...
``COMMIT``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import trio

from lxctl.errors import InvalidState
from lxctl.state.sqlite.migrations import MIGRATIONS, SCHEMA_VERSION
from lxctl.state.sqlite.tables import SQLiteTables
from lxctl.state.store import Tables

T = TypeVar("T")


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def migrate(db: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``target``, each step in its own transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise InvalidState(
            f"Database {path} has schema version {version}, newer than this daemon's "
            f"{SCHEMA_VERSION}: refusing to touch it")
    db.execute("PRAGMA foreign_keys=OFF")  # tables are rebuilt; checked again after
    try:
        for step in range(version, target):
            db.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[step](db)
                problems = db.execute("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise InvalidState(f"Database {path}: migration to version {step + 1} "
                                       f"left dangling references ({len(problems)})")
                db.execute(f"PRAGMA user_version = {step + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
    finally:
        db.execute("PRAGMA foreign_keys=ON")
    return target


class SQLiteStore:
    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path = path
        self.db = db
        self.tables = SQLiteTables(self.db)
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        """Open (or create) the database and migrate it, off the event loop."""

        def open_sync() -> sqlite3.Connection:
            db = connect(path)
            try:
                migrate(db, path)
            except BaseException:
                db.close()
                raise
            return db

        return cls(path, await trio.to_thread.run_sync(open_sync))

    def _write_sync(self, fn: Callable[[Tables], T]) -> T:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self.tables)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return result

    async def read(self, fn: Callable[[Tables], T]) -> T:
        return await trio.to_thread.run_sync(fn, self.tables, limiter=self._limiter)

    async def write(self, fn: Callable[[Tables], T]) -> T:
        return await trio.to_thread.run_sync(self._write_sync, fn, limiter=self._limiter)

    async def close(self) -> None:
        async with self._limiter:
            self.db.close()

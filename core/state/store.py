"""The state store: the interface, and its embedded SQLite implementation.

The interface is async because a cluster implementation (etcd, a later issue) does
network I/O; the SQLite one answers in microseconds (WAL, ``synchronous=NORMAL``:
~18,000 single-row transactions/s on this machine kind) and runs inline.

The schema is versioned: ``MIGRATIONS[n]`` takes version n to n+1, each in one
transaction; the database is never opened by a daemon older than it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from lxctl.errors import AlreadyExists, InvalidState, NotFound
from lxctl.state.records import (
    ImageRecord,
    InstanceRecord,
    OperationRecord,
    PoolRecord,
    ProfileRecord,
    now,
)


class StateStore(Protocol):
    async def close(self) -> None: ...

    # instances
    async def instance_create(self, rec: InstanceRecord) -> None: ...
    async def instance_get(self, name: str) -> InstanceRecord: ...
    async def instance_list(self) -> list[InstanceRecord]: ...
    async def instance_update(self, rec: InstanceRecord) -> None: ...
    async def instance_delete(self, name: str) -> None: ...

    # images
    async def image_create(self, rec: ImageRecord) -> None: ...
    async def image_get(self, ref: str) -> ImageRecord: ...
    async def image_list(self) -> list[ImageRecord]: ...
    async def image_delete(self, fingerprint: str) -> None: ...
    async def image_alias_set(self, alias: str, fingerprint: str) -> None: ...

    # storage pools and profiles
    async def pool_create(self, rec: PoolRecord) -> None: ...
    async def pool_get(self, name: str) -> PoolRecord: ...
    async def pool_list(self) -> list[PoolRecord]: ...
    async def profile_create(self, rec: ProfileRecord) -> None: ...
    async def profile_get(self, name: str) -> ProfileRecord: ...
    async def profile_list(self) -> list[ProfileRecord]: ...

    # operations (so that a restart can fail the ones it interrupted)
    async def operation_put(self, rec: OperationRecord) -> None: ...
    async def operation_delete(self, op_id: str) -> None: ...
    async def operations_fail_running(self, err: str) -> list[OperationRecord]: ...


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT first: run statement by statement inside the migration
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _schema_v1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE instances (
            name TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            architecture TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            config TEXT NOT NULL,
            devices TEXT NOT NULL,
            profiles TEXT NOT NULL,
            ephemeral INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            last_used_at REAL NOT NULL DEFAULT 0,
            power_state TEXT NOT NULL DEFAULT 'Stopped'
        );
        CREATE TABLE images (
            fingerprint TEXT PRIMARY KEY,
            filename TEXT NOT NULL,
            size INTEGER NOT NULL,
            architecture TEXT NOT NULL,
            type TEXT NOT NULL,
            properties TEXT NOT NULL,
            created_at REAL NOT NULL,
            uploaded_at REAL NOT NULL,
            public INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE image_aliases (
            name TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL REFERENCES images(fingerprint) ON DELETE CASCADE
        );
        CREATE TABLE storage_pools (
            name TEXT PRIMARY KEY,
            driver TEXT NOT NULL,
            config TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE profiles (
            name TEXT PRIMARY KEY,
            config TEXT NOT NULL,
            devices TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE operations (
            id TEXT PRIMARY KEY,
            description TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            resources TEXT NOT NULL,
            err TEXT NOT NULL DEFAULT ''
        );
        """
    )


MIGRATIONS = [_schema_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class SQLiteStore:
    """The embedded default store: one SQLite file in WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.migrate()

    def migrate(self) -> int:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise InvalidState(
                f"Database {self.path} has schema version {version}, newer than this "
                f"daemon's {SCHEMA_VERSION}: refusing to touch it"
            )
        for target in range(version, SCHEMA_VERSION):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[target](self.db)
                self.db.execute(f"PRAGMA user_version = {target + 1}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return int(SCHEMA_VERSION)

    async def close(self) -> None:
        self.db.close()

    def _insert(self, sql: str, args: tuple[Any, ...], what: str, name: str) -> None:
        try:
            self.db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"{what} {name!r} already exists", name=name) from None

    # ------------------------------------------------------------------ instances
    @staticmethod
    def _instance(row: sqlite3.Row) -> InstanceRecord:
        return InstanceRecord(
            name=row["name"], type=row["type"], architecture=row["architecture"],
            description=row["description"], config=json.loads(row["config"]),
            devices=json.loads(row["devices"]), profiles=json.loads(row["profiles"]),
            ephemeral=bool(row["ephemeral"]), created_at=row["created_at"],
            last_used_at=row["last_used_at"], power_state=row["power_state"],
        )

    async def instance_create(self, rec: InstanceRecord) -> None:
        self._insert(
            "INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (rec.name, rec.type, rec.architecture, rec.description, _dumps(rec.config),
             _dumps(rec.devices), _dumps(rec.profiles), int(rec.ephemeral), rec.created_at,
             rec.last_used_at, rec.power_state),
            "Instance", rec.name,
        )

    async def instance_get(self, name: str) -> InstanceRecord:
        row = self.db.execute("SELECT * FROM instances WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"Instance {name!r} not found", name=name)
        return self._instance(row)

    async def instance_list(self) -> list[InstanceRecord]:
        rows = self.db.execute("SELECT * FROM instances ORDER BY name").fetchall()
        return [self._instance(r) for r in rows]

    async def instance_update(self, rec: InstanceRecord) -> None:
        cur = self.db.execute(
            "UPDATE instances SET description=?, config=?, devices=?, profiles=?, "
            "ephemeral=?, last_used_at=?, power_state=? WHERE name=?",
            (rec.description, _dumps(rec.config), _dumps(rec.devices), _dumps(rec.profiles),
             int(rec.ephemeral), rec.last_used_at, rec.power_state, rec.name),
        )
        if cur.rowcount == 0:
            raise NotFound(f"Instance {rec.name!r} not found", name=rec.name)

    async def instance_delete(self, name: str) -> None:
        self.db.execute("DELETE FROM instances WHERE name=?", (name,))

    # ------------------------------------------------------------------ images
    def _image(self, row: sqlite3.Row) -> ImageRecord:
        aliases = [
            r[0] for r in self.db.execute(
                "SELECT name FROM image_aliases WHERE fingerprint=? ORDER BY name",
                (row["fingerprint"],),
            )
        ]
        return ImageRecord(
            fingerprint=row["fingerprint"], filename=row["filename"], size=row["size"],
            architecture=row["architecture"], type=row["type"],
            properties=json.loads(row["properties"]), aliases=aliases,
            created_at=row["created_at"], uploaded_at=row["uploaded_at"],
            public=bool(row["public"]),
        )

    async def image_create(self, rec: ImageRecord) -> None:
        self._insert(
            "INSERT INTO images VALUES (?,?,?,?,?,?,?,?,?)",
            (rec.fingerprint, rec.filename, rec.size, rec.architecture, rec.type,
             _dumps(rec.properties), rec.created_at, rec.uploaded_at, int(rec.public)),
            "Image", rec.fingerprint,
        )

    async def image_get(self, ref: str) -> ImageRecord:
        """By alias, full fingerprint, or a unique fingerprint prefix."""
        row = self.db.execute(
            "SELECT images.* FROM images JOIN image_aliases USING (fingerprint) "
            "WHERE image_aliases.name=?", (ref,),
        ).fetchone()
        if row is None and ref and all(c in "0123456789abcdef" for c in ref):
            rows = self.db.execute(
                "SELECT * FROM images WHERE fingerprint LIKE ? LIMIT 2", (ref + "%",)
            ).fetchall()
            if len(rows) > 1:
                raise InvalidState(f"Image fingerprint prefix {ref!r} is ambiguous", image=ref)
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"Image {ref!r} not found", image=ref)
        return self._image(row)

    async def image_list(self) -> list[ImageRecord]:
        rows = self.db.execute("SELECT * FROM images ORDER BY uploaded_at").fetchall()
        return [self._image(r) for r in rows]

    async def image_delete(self, fingerprint: str) -> None:
        self.db.execute("DELETE FROM images WHERE fingerprint=?", (fingerprint,))

    async def image_alias_set(self, alias: str, fingerprint: str) -> None:
        self.db.execute(
            "INSERT INTO image_aliases VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET fingerprint=excluded.fingerprint",
            (alias, fingerprint),
        )

    # ------------------------------------------------------------------ pools, profiles
    async def pool_create(self, rec: PoolRecord) -> None:
        self._insert("INSERT INTO storage_pools VALUES (?,?,?,?)",
                     (rec.name, rec.driver, _dumps(rec.config), rec.description),
                     "Storage pool", rec.name)

    async def pool_get(self, name: str) -> PoolRecord:
        row = self.db.execute("SELECT * FROM storage_pools WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"Storage pool {name!r} not found", pool=name)
        return PoolRecord(row["name"], row["driver"], json.loads(row["config"]),
                          row["description"])

    async def pool_list(self) -> list[PoolRecord]:
        rows = self.db.execute("SELECT * FROM storage_pools ORDER BY name").fetchall()
        return [PoolRecord(r["name"], r["driver"], json.loads(r["config"]), r["description"])
                for r in rows]

    async def profile_create(self, rec: ProfileRecord) -> None:
        self._insert("INSERT INTO profiles VALUES (?,?,?,?)",
                     (rec.name, _dumps(rec.config), _dumps(rec.devices), rec.description),
                     "Profile", rec.name)

    async def profile_get(self, name: str) -> ProfileRecord:
        row = self.db.execute("SELECT * FROM profiles WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"Profile {name!r} not found", profile=name)
        return ProfileRecord(row["name"], json.loads(row["config"]), json.loads(row["devices"]),
                             row["description"])

    async def profile_list(self) -> list[ProfileRecord]:
        rows = self.db.execute("SELECT * FROM profiles ORDER BY name").fetchall()
        return [ProfileRecord(r["name"], json.loads(r["config"]), json.loads(r["devices"]),
                              r["description"]) for r in rows]

    # ------------------------------------------------------------------ operations
    async def operation_put(self, rec: OperationRecord) -> None:
        self.db.execute(
            "INSERT INTO operations VALUES (?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
            "status=excluded.status, updated_at=excluded.updated_at, err=excluded.err",
            (rec.id, rec.description, rec.status, rec.created_at, rec.updated_at,
             _dumps(rec.resources), rec.err),
        )

    async def operation_delete(self, op_id: str) -> None:
        self.db.execute("DELETE FROM operations WHERE id=?", (op_id,))

    async def operations_fail_running(self, err: str) -> list[OperationRecord]:
        rows = self.db.execute("SELECT * FROM operations WHERE status='Running'").fetchall()
        self.db.execute(
            "UPDATE operations SET status='Failure', err=?, updated_at=? "
            "WHERE status='Running'", (err, now()),
        )
        return [
            OperationRecord(r["id"], r["description"], "Failure", r["created_at"], now(),
                            json.loads(r["resources"]), err)
            for r in rows
        ]

"""The SQLite schema, versioned: ``MIGRATIONS[n]`` takes version n to n+1, each in one
transaction. A database is never opened by a daemon older than it."""

from __future__ import annotations

import sqlite3


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT first: run statement by statement inside the migration
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def schema_v1(db: sqlite3.Connection) -> None:
    """The foundation's schema: objects keyed by name alone."""
    _run_script(db, """
        CREATE TABLE instances (
            name TEXT PRIMARY KEY, type TEXT NOT NULL, architecture TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '', config TEXT NOT NULL,
            devices TEXT NOT NULL, profiles TEXT NOT NULL,
            ephemeral INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
            last_used_at REAL NOT NULL DEFAULT 0, power_state TEXT NOT NULL DEFAULT 'Stopped'
        );
        CREATE TABLE images (
            fingerprint TEXT PRIMARY KEY, filename TEXT NOT NULL, size INTEGER NOT NULL,
            architecture TEXT NOT NULL, type TEXT NOT NULL, properties TEXT NOT NULL,
            created_at REAL NOT NULL, uploaded_at REAL NOT NULL,
            public INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE image_aliases (
            name TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL REFERENCES images(fingerprint) ON DELETE CASCADE
        );
        CREATE TABLE storage_pools (
            name TEXT PRIMARY KEY, driver TEXT NOT NULL, config TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE profiles (
            name TEXT PRIMARY KEY, config TEXT NOT NULL, devices TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE operations (
            id TEXT PRIMARY KEY, description TEXT NOT NULL, status TEXT NOT NULL,
            created_at REAL NOT NULL, updated_at REAL NOT NULL, resources TEXT NOT NULL,
            err TEXT NOT NULL DEFAULT ''
        )
    """)


def schema_v2(db: sqlite3.Connection) -> None:
    """Projects and locations: every object keyed by (project, name), a ``default``
    project, a ``location`` column; networks and storage volumes get tables."""
    _run_script(db, """
        CREATE TABLE projects (
            name TEXT PRIMARY KEY, config TEXT NOT NULL DEFAULT '{}',
            description TEXT NOT NULL DEFAULT ''
        );
        INSERT INTO projects VALUES ('default', '{}', 'Default lxctl project');

        CREATE TABLE instances_v2 (
            project TEXT NOT NULL REFERENCES projects(name), name TEXT NOT NULL,
            type TEXT NOT NULL, architecture TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '', config TEXT NOT NULL,
            devices TEXT NOT NULL, profiles TEXT NOT NULL,
            ephemeral INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
            last_used_at REAL NOT NULL DEFAULT 0,
            power_state TEXT NOT NULL DEFAULT 'Stopped',
            location TEXT NOT NULL DEFAULT 'none',
            PRIMARY KEY (project, name)
        );
        INSERT INTO instances_v2 SELECT 'default', name, type, architecture, description,
            config, devices, profiles, ephemeral, created_at, last_used_at, power_state,
            'none' FROM instances;
        DROP TABLE instances;
        ALTER TABLE instances_v2 RENAME TO instances;

        CREATE TABLE images_v2 (
            project TEXT NOT NULL REFERENCES projects(name), fingerprint TEXT NOT NULL,
            filename TEXT NOT NULL, size INTEGER NOT NULL, architecture TEXT NOT NULL,
            type TEXT NOT NULL, properties TEXT NOT NULL, created_at REAL NOT NULL,
            uploaded_at REAL NOT NULL, public INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (project, fingerprint)
        );
        INSERT INTO images_v2 SELECT 'default', fingerprint, filename, size, architecture,
            type, properties, created_at, uploaded_at, public FROM images;
        CREATE TABLE image_aliases_v2 (
            project TEXT NOT NULL, name TEXT NOT NULL, fingerprint TEXT NOT NULL,
            PRIMARY KEY (project, name),
            FOREIGN KEY (project, fingerprint) REFERENCES images_v2(project, fingerprint)
                ON DELETE CASCADE
        );
        INSERT INTO image_aliases_v2 SELECT 'default', name, fingerprint FROM image_aliases;
        DROP TABLE image_aliases;
        DROP TABLE images;
        ALTER TABLE images_v2 RENAME TO images;
        ALTER TABLE image_aliases_v2 RENAME TO image_aliases;

        CREATE TABLE storage_volumes (
            project TEXT NOT NULL REFERENCES projects(name),
            pool TEXT NOT NULL REFERENCES storage_pools(name),
            type TEXT NOT NULL, name TEXT NOT NULL,
            content_type TEXT NOT NULL DEFAULT 'filesystem',
            config TEXT NOT NULL DEFAULT '{}', description TEXT NOT NULL DEFAULT '',
            location TEXT NOT NULL DEFAULT 'none', created_at REAL NOT NULL,
            PRIMARY KEY (project, pool, type, name)
        );

        CREATE TABLE profiles_v2 (
            project TEXT NOT NULL REFERENCES projects(name), name TEXT NOT NULL,
            config TEXT NOT NULL, devices TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (project, name)
        );
        INSERT INTO profiles_v2 SELECT 'default', name, config, devices, description
            FROM profiles;
        DROP TABLE profiles;
        ALTER TABLE profiles_v2 RENAME TO profiles;

        CREATE TABLE networks (
            project TEXT NOT NULL REFERENCES projects(name), name TEXT NOT NULL,
            type TEXT NOT NULL, config TEXT NOT NULL DEFAULT '{}',
            description TEXT NOT NULL DEFAULT '', location TEXT NOT NULL DEFAULT 'none',
            PRIMARY KEY (project, name)
        );

        ALTER TABLE operations ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
        ALTER TABLE operations ADD COLUMN location TEXT NOT NULL DEFAULT 'none'
    """)
    # the root volumes of existing instances, now recorded as volumes of their pool
    for name, devices, profiles in db.execute(
            "SELECT name, devices, profiles FROM instances").fetchall():
        import json

        pool = json.loads(devices).get("root", {}).get("pool")
        for profile in json.loads(profiles):
            if pool:
                break
            row = db.execute("SELECT devices FROM profiles WHERE project='default' AND "
                             "name=?", (profile,)).fetchone()
            pool = json.loads(row[0]).get("root", {}).get("pool") if row else None
        if pool:
            db.execute("INSERT OR IGNORE INTO storage_volumes (project, pool, type, name, "
                       "created_at) VALUES ('default', ?, 'container', ?, 0)", (pool, name))


def schema_v3(db: sqlite3.Connection) -> None:
    """Warnings: one row per (project, type, entity, location), counted, with a status
    (new, acknowledged, resolved) that outlives a restart."""
    _run_script(db, """
        CREATE TABLE warnings (
            uuid TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT '', type TEXT NOT NULL,
            entity_type TEXT NOT NULL DEFAULT '', entity_name TEXT NOT NULL DEFAULT '',
            count INTEGER NOT NULL DEFAULT 1, first_seen REAL NOT NULL,
            last_seen REAL NOT NULL, last_message TEXT NOT NULL DEFAULT '',
            severity TEXT NOT NULL DEFAULT 'moderate', status TEXT NOT NULL DEFAULT 'new',
            location TEXT NOT NULL DEFAULT 'none',
            UNIQUE (project, type, entity_type, entity_name, location)
        )
    """)


def schema_v4(db: sqlite3.Connection) -> None:
    """Network ACLs: per project, their rules as JSON lists (ingress, egress)."""
    _run_script(db, """
        CREATE TABLE network_acls (
            project TEXT NOT NULL REFERENCES projects(name), name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '', ingress TEXT NOT NULL DEFAULT '[]',
            egress TEXT NOT NULL DEFAULT '[]', config TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (project, name)
        )
    """)


def schema_v5(db: sqlite3.Connection) -> None:
    """Instance snapshots: what the instance was (config, devices, profiles) when its root
    volume's snapshot of the same name was taken; they follow a rename of the instance
    and go with its deletion."""
    _run_script(db, """
        CREATE TABLE instance_snapshots (
            project TEXT NOT NULL, instance TEXT NOT NULL, name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '', config TEXT NOT NULL,
            devices TEXT NOT NULL, profiles TEXT NOT NULL,
            created_at REAL NOT NULL, expires_at REAL NOT NULL DEFAULT 0,
            stateful INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (project, instance, name),
            FOREIGN KEY (project, instance) REFERENCES instances(project, name)
                ON DELETE CASCADE ON UPDATE CASCADE
        )
    """)


MIGRATIONS = [schema_v1, schema_v2, schema_v3, schema_v4, schema_v5]
SCHEMA_VERSION = len(MIGRATIONS)

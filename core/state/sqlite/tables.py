"""The rows of each table, for SQLite: the :class:`~lxctl.state.store.Tables` methods.

Synchronous: the store calls them from its worker thread, one call or one transaction
at a time.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from lxctl.errors import AlreadyExists, InvalidState, NotFound
from lxctl.state.records import (
    ImageRecord,
    InstanceRecord,
    NetworkAclRecord,
    NetworkRecord,
    OperationRecord,
    PoolRecord,
    ProfileRecord,
    ProjectRecord,
    SnapshotRecord,
    VolumeRecord,
    WarningRecord,
    now,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _in(project: str) -> str:
    return "" if project == "default" else f" in project {project!r}"


class SQLiteTables:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def _insert(self, sql: str, args: tuple[Any, ...], what: str) -> None:
        try:
            self.db.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise NotFound(f"{what}: what it refers to does not exist") from None
            raise AlreadyExists(f"{what} already exists") from None

    # ------------------------------------------------------------------ projects
    def project_create(self, rec: ProjectRecord) -> None:
        self._insert("INSERT INTO projects VALUES (?,?,?)",
                     (rec.name, _dumps(rec.config), rec.description), f"Project {rec.name!r}")

    def project_get(self, name: str) -> ProjectRecord:
        row = self.db.execute("SELECT * FROM projects WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"Project {name!r} not found", project=name)
        return ProjectRecord(row["name"], json.loads(row["config"]), row["description"])

    def project_list(self) -> list[ProjectRecord]:
        return [ProjectRecord(r["name"], json.loads(r["config"]), r["description"])
                for r in self.db.execute("SELECT * FROM projects ORDER BY name")]

    def project_update(self, rec: ProjectRecord) -> None:
        cur = self.db.execute("UPDATE projects SET config=?, description=? WHERE name=?",
                              (_dumps(rec.config), rec.description, rec.name))
        if cur.rowcount == 0:
            raise NotFound(f"Project {rec.name!r} not found", project=rec.name)

    def project_delete(self, name: str) -> None:
        self.db.execute("DELETE FROM profiles WHERE project=? AND name='default'", (name,))
        try:
            self.db.execute("DELETE FROM projects WHERE name=?", (name,))
        except sqlite3.IntegrityError:
            raise InvalidState(f"Project {name!r} is in use", project=name) from None

    def project_rename(self, name: str, new_name: str) -> None:
        old = self.project_get(name)
        self.project_create(ProjectRecord(new_name, old.config, old.description))
        self.db.execute("UPDATE profiles SET project=? WHERE project=?", (new_name, name))
        self.db.execute("DELETE FROM projects WHERE name=?", (name,))

    def project_usage(self, name: str) -> dict[str, list[str]]:
        queries = {
            "instances": "SELECT name FROM instances WHERE project=? ORDER BY name",
            "images": "SELECT fingerprint FROM images WHERE project=? ORDER BY fingerprint",
            "profiles": "SELECT name FROM profiles WHERE project=? ORDER BY name",
            "networks": "SELECT name FROM networks WHERE project=? ORDER BY name",
            "volumes": "SELECT pool || '/' || type || '/' || name FROM storage_volumes "
                       "WHERE project=? ORDER BY pool, type, name",
        }
        usage = {kind: [r[0] for r in self.db.execute(sql, (name,))]
                 for kind, sql in queries.items()}
        return {kind: names for kind, names in usage.items() if names}

    def project_instance_count(self, name: str, type: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM instances WHERE project=?", [name]
        if type is not None:
            sql, args = sql + " AND type=?", [*args, type]
        count: int = self.db.execute(sql, args).fetchone()[0]
        return count

    # ------------------------------------------------------------------ instances
    @staticmethod
    def _instance(row: sqlite3.Row) -> InstanceRecord:
        return InstanceRecord(
            name=row["name"], type=row["type"], architecture=row["architecture"],
            description=row["description"], config=json.loads(row["config"]),
            devices=json.loads(row["devices"]), profiles=json.loads(row["profiles"]),
            ephemeral=bool(row["ephemeral"]), created_at=row["created_at"],
            last_used_at=row["last_used_at"], power_state=row["power_state"],
            project=row["project"], location=row["location"],
        )

    def instance_create(self, rec: InstanceRecord) -> None:
        self.project_get(rec.project)
        self._insert(
            "INSERT INTO instances (project, name, type, architecture, description, config, "
            "devices, profiles, ephemeral, created_at, last_used_at, power_state, location) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec.project, rec.name, rec.type, rec.architecture, rec.description,
             _dumps(rec.config), _dumps(rec.devices), _dumps(rec.profiles), int(rec.ephemeral),
             rec.created_at, rec.last_used_at, rec.power_state, rec.location),
            f"Instance {rec.name!r}{_in(rec.project)}")

    def instance_get(self, project: str, name: str) -> InstanceRecord:
        row = self.db.execute("SELECT * FROM instances WHERE project=? AND name=?",
                              (project, name)).fetchone()
        if row is None:
            raise NotFound(f"Instance {name!r} not found{_in(project)}", name=name,
                           project=project)
        return self._instance(row)

    def instance_list(self, project: str | None) -> list[InstanceRecord]:
        if project is None:
            rows = self.db.execute("SELECT * FROM instances ORDER BY project, name")
        else:
            rows = self.db.execute("SELECT * FROM instances WHERE project=? ORDER BY name",
                                   (project,))
        return [self._instance(r) for r in rows]

    def instance_update(self, rec: InstanceRecord) -> None:
        cur = self.db.execute(
            "UPDATE instances SET description=?, config=?, devices=?, profiles=?, "
            "ephemeral=?, last_used_at=?, power_state=?, location=? WHERE project=? AND name=?",
            (rec.description, _dumps(rec.config), _dumps(rec.devices), _dumps(rec.profiles),
             int(rec.ephemeral), rec.last_used_at, rec.power_state, rec.location, rec.project,
             rec.name))
        if cur.rowcount == 0:
            raise NotFound(f"Instance {rec.name!r} not found{_in(rec.project)}", name=rec.name)

    def instance_delete(self, project: str, name: str) -> None:
        self.db.execute("DELETE FROM instances WHERE project=? AND name=?", (project, name))

    def instance_rename(self, project: str, name: str, new_name: str) -> None:
        """The instance and its snapshots (ON UPDATE CASCADE), and its root volume's
        record on whichever pool holds it."""
        self._rename("UPDATE instances SET name=? WHERE project=? AND name=?",
                     (new_name, project, name), f"Instance {new_name!r}{_in(project)}")
        self.db.execute("UPDATE storage_volumes SET name=? WHERE project=? AND name=? AND "
                        "type IN ('container', 'virtual-machine')", (new_name, project, name))

    def _rename(self, sql: str, args: tuple[Any, ...], what: str) -> None:
        try:
            cur = self.db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"{what} already exists") from None
        if cur.rowcount == 0:
            raise NotFound(f"{what.split(' ', 1)[0]} {args[-1]!r} not found")

    # ------------------------------------------------------------------ snapshots
    @staticmethod
    def _snapshot(r: sqlite3.Row) -> SnapshotRecord:
        return SnapshotRecord(r["instance"], r["name"], json.loads(r["config"]),
                              json.loads(r["devices"]), json.loads(r["profiles"]),
                              r["description"], r["created_at"], r["expires_at"],
                              bool(r["stateful"]), r["project"])

    def snapshot_create(self, rec: SnapshotRecord) -> None:
        self._insert(
            "INSERT INTO instance_snapshots (project, instance, name, description, config, "
            "devices, profiles, created_at, expires_at, stateful) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (rec.project, rec.instance, rec.name, rec.description, _dumps(rec.config),
             _dumps(rec.devices), _dumps(rec.profiles), rec.created_at, rec.expires_at,
             int(rec.stateful)),
            f"Snapshot {rec.name!r} of instance {rec.instance!r}{_in(rec.project)}")

    def snapshot_get(self, project: str, instance: str, name: str) -> SnapshotRecord:
        row = self.db.execute("SELECT * FROM instance_snapshots WHERE project=? AND "
                              "instance=? AND name=?", (project, instance, name)).fetchone()
        if row is None:
            raise NotFound(f"Snapshot {name!r} of instance {instance!r} not found"
                           f"{_in(project)}", instance=instance, snapshot=name)
        return self._snapshot(row)

    def snapshot_list(self, project: str | None, instance: str | None = None
                      ) -> list[SnapshotRecord]:
        """Oldest first; of one instance, of a project, or of all (None)."""
        sql, args = "SELECT * FROM instance_snapshots WHERE 1", list[str]()
        if project is not None:
            sql, args = sql + " AND project=?", [*args, project]
        if instance is not None:
            sql, args = sql + " AND instance=?", [*args, instance]
        return [self._snapshot(r) for r in self.db.execute(
            sql + " ORDER BY project, instance, created_at, rowid", args)]

    def snapshot_update(self, rec: SnapshotRecord) -> None:
        cur = self.db.execute(
            "UPDATE instance_snapshots SET description=?, expires_at=? WHERE project=? AND "
            "instance=? AND name=?", (rec.description, rec.expires_at, *rec.key))
        if cur.rowcount == 0:
            raise NotFound(f"Snapshot {rec.name!r} of instance {rec.instance!r} not found")

    def snapshot_rename(self, project: str, instance: str, name: str, new_name: str) -> None:
        self._rename("UPDATE instance_snapshots SET name=? WHERE project=? AND instance=? "
                     "AND name=?", (new_name, project, instance, name),
                     f"Snapshot {new_name!r} of instance {instance!r}{_in(project)}")

    def snapshot_delete(self, project: str, instance: str, name: str) -> None:
        self.db.execute("DELETE FROM instance_snapshots WHERE project=? AND instance=? AND "
                        "name=?", (project, instance, name))

    # ------------------------------------------------------------------ images
    def _image(self, row: sqlite3.Row) -> ImageRecord:
        aliases = [r[0] for r in self.db.execute(
            "SELECT name FROM image_aliases WHERE project=? AND fingerprint=? ORDER BY name",
            (row["project"], row["fingerprint"]))]
        return ImageRecord(
            fingerprint=row["fingerprint"], filename=row["filename"], size=row["size"],
            architecture=row["architecture"], type=row["type"],
            properties=json.loads(row["properties"]), aliases=aliases,
            created_at=row["created_at"], uploaded_at=row["uploaded_at"],
            public=bool(row["public"]), project=row["project"])

    def image_create(self, rec: ImageRecord) -> None:
        self._insert(
            "INSERT INTO images (project, fingerprint, filename, size, architecture, type, "
            "properties, created_at, uploaded_at, public) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (rec.project, rec.fingerprint, rec.filename, rec.size, rec.architecture, rec.type,
             _dumps(rec.properties), rec.created_at, rec.uploaded_at, int(rec.public)),
            "Image with same fingerprint")

    def image_get(self, project: str, ref: str) -> ImageRecord:
        """By alias, full fingerprint, or a unique fingerprint prefix."""
        row = self.db.execute(
            "SELECT images.* FROM images JOIN image_aliases USING (project, fingerprint) "
            "WHERE image_aliases.project=? AND image_aliases.name=?", (project, ref)).fetchone()
        if row is None and ref and all(c in "0123456789abcdef" for c in ref):
            rows = self.db.execute(
                "SELECT * FROM images WHERE project=? AND fingerprint LIKE ? LIMIT 2",
                (project, ref + "%")).fetchall()
            if len(rows) > 1:
                raise InvalidState(f"Image fingerprint prefix {ref!r} is ambiguous", image=ref)
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"Image {ref!r} not found{_in(project)}", image=ref)
        return self._image(row)

    def image_list(self, project: str) -> list[ImageRecord]:
        rows = self.db.execute("SELECT * FROM images WHERE project=? ORDER BY uploaded_at",
                               (project,)).fetchall()
        return [self._image(r) for r in rows]

    def image_delete(self, project: str, fingerprint: str) -> None:
        self.db.execute("DELETE FROM images WHERE project=? AND fingerprint=?",
                        (project, fingerprint))

    def image_alias_set(self, project: str, alias: str, fingerprint: str) -> None:
        self.db.execute(
            "INSERT INTO image_aliases VALUES (?, ?, ?) "
            "ON CONFLICT(project, name) DO UPDATE SET fingerprint=excluded.fingerprint",
            (project, alias, fingerprint))

    # ------------------------------------------------------------------ pools, volumes
    @staticmethod
    def _pool(r: sqlite3.Row) -> PoolRecord:
        return PoolRecord(r["name"], r["driver"], json.loads(r["config"]), r["description"])

    def pool_create(self, rec: PoolRecord) -> None:
        self._insert("INSERT INTO storage_pools VALUES (?,?,?,?)",
                     (rec.name, rec.driver, _dumps(rec.config), rec.description),
                     f"Storage pool {rec.name!r}")

    def pool_get(self, name: str) -> PoolRecord:
        row = self.db.execute("SELECT * FROM storage_pools WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"Storage pool {name!r} not found", pool=name)
        return self._pool(row)

    def pool_list(self) -> list[PoolRecord]:
        return [self._pool(r) for r in self.db.execute(
            "SELECT * FROM storage_pools ORDER BY name")]

    def pool_delete(self, name: str) -> None:
        if self.db.execute("SELECT 1 FROM storage_volumes WHERE pool=? LIMIT 1",
                           (name,)).fetchone():
            raise InvalidState(f"Storage pool {name!r} is in use", pool=name)
        self.db.execute("DELETE FROM storage_pools WHERE name=?", (name,))

    def volume_create(self, rec: VolumeRecord) -> None:
        self._insert(
            "INSERT INTO storage_volumes VALUES (?,?,?,?,?,?,?,?,?)",
            (rec.project, rec.pool, rec.type, rec.name, rec.content_type, _dumps(rec.config),
             rec.description, rec.location, rec.created_at),
            f"Storage volume {rec.type}/{rec.name!r} on pool {rec.pool!r}{_in(rec.project)}")

    def volume_list(self, pool: str | None, project: str | None) -> list[VolumeRecord]:
        sql, args = "SELECT * FROM storage_volumes WHERE 1", list[str]()
        if pool is not None:
            sql, args = sql + " AND pool=?", [*args, pool]
        if project is not None:
            sql, args = sql + " AND project=?", [*args, project]
        return [VolumeRecord(r["pool"], r["name"], r["type"], r["content_type"],
                             json.loads(r["config"]), r["description"], r["project"],
                             r["location"], r["created_at"])
                for r in self.db.execute(sql + " ORDER BY project, pool, type, name", args)]

    def pool_update(self, rec: PoolRecord) -> None:
        self.pool_get(rec.name)
        self.db.execute("UPDATE storage_pools SET config=?, description=? WHERE name=?",
                        (_dumps(rec.config), rec.description, rec.name))

    def volume_get(self, project: str, pool: str, type: str, name: str) -> VolumeRecord:
        for rec in self.volume_list(pool, project):
            if rec.type == type and rec.name == name:
                return rec
        raise NotFound(f"Storage volume {name!r} not found on pool {pool!r}{_in(project)}",
                       pool=pool, volume=name)

    def volume_update(self, rec: VolumeRecord) -> None:
        self.volume_get(rec.project, rec.pool, rec.type, rec.name)
        self.db.execute("UPDATE storage_volumes SET config=?, description=? WHERE project=? "
                        "AND pool=? AND type=? AND name=?",
                        (_dumps(rec.config), rec.description, rec.project, rec.pool,
                         rec.type, rec.name))

    def volume_move(self, rec: VolumeRecord, pool: str, name: str) -> None:
        """The record of ``rec`` now names ``name`` on ``pool``."""
        self._rename("UPDATE storage_volumes SET pool=?, name=? WHERE project=? AND pool=? "
                     "AND type=? AND name=?",
                     (pool, name, rec.project, rec.pool, rec.type, rec.name),
                     f"Storage volume {rec.type}/{name!r} on pool {pool!r}{_in(rec.project)}")

    def volume_delete(self, project: str, pool: str, type: str, name: str) -> None:
        self.db.execute("DELETE FROM storage_volumes WHERE project=? AND pool=? AND type=? "
                        "AND name=?", (project, pool, type, name))

    # ------------------------------------------------------------------ profiles
    @staticmethod
    def _profile(r: sqlite3.Row) -> ProfileRecord:
        return ProfileRecord(r["name"], json.loads(r["config"]), json.loads(r["devices"]),
                             r["description"], r["project"])

    def profile_create(self, rec: ProfileRecord) -> None:
        self.project_get(rec.project)
        self._insert("INSERT INTO profiles VALUES (?,?,?,?,?)",
                     (rec.project, rec.name, _dumps(rec.config), _dumps(rec.devices),
                      rec.description), f"Profile {rec.name!r}{_in(rec.project)}")

    def profile_get(self, project: str, name: str) -> ProfileRecord:
        row = self.db.execute("SELECT * FROM profiles WHERE project=? AND name=?",
                              (project, name)).fetchone()
        if row is None:
            raise NotFound(f"Profile {name!r} not found{_in(project)}", profile=name)
        return self._profile(row)

    def profile_list(self, project: str) -> list[ProfileRecord]:
        return [self._profile(r) for r in self.db.execute(
            "SELECT * FROM profiles WHERE project=? ORDER BY name", (project,))]

    def profile_update(self, rec: ProfileRecord) -> None:
        cur = self.db.execute(
            "UPDATE profiles SET config=?, devices=?, description=? WHERE project=? AND name=?",
            (_dumps(rec.config), _dumps(rec.devices), rec.description, rec.project, rec.name))
        if cur.rowcount == 0:
            raise NotFound(f"Profile {rec.name!r} not found{_in(rec.project)}",
                           profile=rec.name)

    def profile_rename(self, project: str, name: str, new_name: str) -> None:
        """The profile row only: the caller updates the instances that name it."""
        try:
            cur = self.db.execute("UPDATE profiles SET name=? WHERE project=? AND name=?",
                                  (new_name, project, name))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"Profile {new_name!r}{_in(project)} already exists",
                                profile=new_name) from None
        if cur.rowcount == 0:
            raise NotFound(f"Profile {name!r} not found{_in(project)}", profile=name)

    def profile_delete(self, project: str, name: str) -> None:
        self.db.execute("DELETE FROM profiles WHERE project=? AND name=?", (project, name))

    def profile_used_by(self, project: str, name: str) -> list[InstanceRecord]:
        rows = self.db.execute(
            "SELECT * FROM instances WHERE project=? AND EXISTS "
            "(SELECT 1 FROM json_each(instances.profiles) WHERE value=?) ORDER BY name",
            (project, name))
        return [self._instance(r) for r in rows]

    # ------------------------------------------------------------------ networks
    @staticmethod
    def _network(r: sqlite3.Row) -> NetworkRecord:
        return NetworkRecord(r["name"], r["type"], json.loads(r["config"]), r["description"],
                             r["project"], r["location"])

    def network_create(self, rec: NetworkRecord) -> None:
        self.project_get(rec.project)
        self._insert("INSERT INTO networks VALUES (?,?,?,?,?,?)",
                     (rec.project, rec.name, rec.type, _dumps(rec.config), rec.description,
                      rec.location), f"Network {rec.name!r}{_in(rec.project)}")

    def network_get(self, project: str, name: str) -> NetworkRecord:
        row = self.db.execute("SELECT * FROM networks WHERE project=? AND name=?",
                              (project, name)).fetchone()
        if row is None:
            raise NotFound(f"Network {name!r} not found{_in(project)}", network=name)
        return self._network(row)

    def network_list(self, project: str | None) -> list[NetworkRecord]:
        if project is None:
            rows = self.db.execute("SELECT * FROM networks ORDER BY project, name")
        else:
            rows = self.db.execute("SELECT * FROM networks WHERE project=? ORDER BY name",
                                   (project,))
        return [self._network(r) for r in rows]

    def network_delete(self, project: str, name: str) -> None:
        self.db.execute("DELETE FROM networks WHERE project=? AND name=?", (project, name))

    def network_update(self, rec: NetworkRecord) -> None:
        self.network_get(rec.project, rec.name)
        self.db.execute("UPDATE networks SET config=?, description=? WHERE project=? AND "
                        "name=?", (_dumps(rec.config), rec.description, rec.project,
                                   rec.name))

    # ------------------------------------------------------------------ network ACLs
    @staticmethod
    def _network_acl(r: sqlite3.Row) -> NetworkAclRecord:
        return NetworkAclRecord(r["name"], json.loads(r["ingress"]), json.loads(r["egress"]),
                                json.loads(r["config"]), r["description"], r["project"])

    def network_acl_create(self, rec: NetworkAclRecord) -> None:
        self.project_get(rec.project)
        self._insert("INSERT INTO network_acls VALUES (?,?,?,?,?,?)",
                     (rec.project, rec.name, rec.description, _dumps(rec.ingress),
                      _dumps(rec.egress), _dumps(rec.config)),
                     f"Network ACL {rec.name!r}{_in(rec.project)}")

    def network_acl_get(self, project: str, name: str) -> NetworkAclRecord:
        row = self.db.execute("SELECT * FROM network_acls WHERE project=? AND name=?",
                              (project, name)).fetchone()
        if row is None:
            raise NotFound(f"Network ACL {name!r} not found{_in(project)}", acl=name)
        return self._network_acl(row)

    def network_acl_list(self, project: str) -> list[NetworkAclRecord]:
        rows = self.db.execute("SELECT * FROM network_acls WHERE project=? ORDER BY name",
                               (project,))
        return [self._network_acl(r) for r in rows]

    def network_acl_update(self, rec: NetworkAclRecord) -> None:
        self.network_acl_get(rec.project, rec.name)
        self.db.execute("UPDATE network_acls SET description=?, ingress=?, egress=?, "
                        "config=? WHERE project=? AND name=?",
                        (rec.description, _dumps(rec.ingress), _dumps(rec.egress),
                         _dumps(rec.config), rec.project, rec.name))

    def network_acl_delete(self, project: str, name: str) -> None:
        self.db.execute("DELETE FROM network_acls WHERE project=? AND name=?",
                        (project, name))

    # ------------------------------------------------------------------ operations
    def operation_put(self, rec: OperationRecord) -> None:
        self.db.execute(
            "INSERT INTO operations (id, description, status, created_at, updated_at, "
            "resources, err, project, location) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET status=excluded.status, "
            "updated_at=excluded.updated_at, err=excluded.err",
            (rec.id, rec.description, rec.status, rec.created_at, rec.updated_at,
             _dumps(rec.resources), rec.err, rec.project, rec.location))

    def operation_delete(self, op_id: str) -> None:
        self.db.execute("DELETE FROM operations WHERE id=?", (op_id,))

    def operations_fail_running(self, err: str) -> list[OperationRecord]:
        rows = self.db.execute("SELECT * FROM operations WHERE status='Running'").fetchall()
        self.db.execute("UPDATE operations SET status='Failure', err=?, updated_at=? "
                        "WHERE status='Running'", (err, now()))
        return [OperationRecord(r["id"], r["description"], "Failure", r["created_at"], now(),
                                json.loads(r["resources"]), err, r["project"], r["location"])
                for r in rows]

    # ------------------------------------------------------------------ warnings
    @staticmethod
    def _warning(r: sqlite3.Row) -> WarningRecord:
        return WarningRecord(r["uuid"], r["type"], r["last_message"], r["project"],
                             r["entity_type"], r["entity_name"], r["count"], r["first_seen"],
                             r["last_seen"], r["severity"], r["status"], r["location"])

    def warning_raise(self, rec: WarningRecord) -> WarningRecord:
        row = self.db.execute(
            "SELECT * FROM warnings WHERE project=? AND type=? AND entity_type=? AND "
            "entity_name=? AND location=?",
            (rec.project, rec.type, rec.entity_type, rec.entity_name, rec.location)).fetchone()
        if row is None:
            self.db.execute(
                "INSERT INTO warnings (uuid, project, type, entity_type, entity_name, count, "
                "first_seen, last_seen, last_message, severity, status, location) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec.uuid, rec.project, rec.type, rec.entity_type, rec.entity_name,
                 rec.count, rec.first_seen, rec.last_seen, rec.last_message, rec.severity,
                 rec.status, rec.location))
            return rec
        old = self._warning(row)
        status = "new" if old.status == "resolved" else old.status
        self.db.execute("UPDATE warnings SET count=count+1, last_seen=?, last_message=?, "
                        "severity=?, status=? WHERE uuid=?",
                        (rec.last_seen, rec.last_message, rec.severity, status, old.uuid))
        return self.warning_get(old.uuid)

    def warning_resolve(self, project: str, type: str, entity_type: str,
                        entity_name: str) -> None:
        self.db.execute("UPDATE warnings SET status='resolved' WHERE project=? AND type=? "
                        "AND entity_type=? AND entity_name=?",
                        (project, type, entity_type, entity_name))

    def warning_get(self, uuid: str) -> WarningRecord:
        row = self.db.execute("SELECT * FROM warnings WHERE uuid=?", (uuid,)).fetchone()
        if row is None:
            raise NotFound(f"Warning {uuid!r} not found", warning=uuid)
        return self._warning(row)

    def warning_list(self, project: str | None) -> list[WarningRecord]:
        sql, args = "SELECT * FROM warnings", tuple[str, ...]()
        if project is not None:
            sql, args = sql + " WHERE project=?", (project,)
        rows = self.db.execute(sql + " ORDER BY last_seen, uuid", args).fetchall()
        return [self._warning(r) for r in rows]

    def warning_set_status(self, uuid: str, status: str) -> WarningRecord:
        self.warning_get(uuid)
        self.db.execute("UPDATE warnings SET status=? WHERE uuid=?", (status, uuid))
        return self.warning_get(uuid)

    def warning_delete(self, uuid: str) -> None:
        self.warning_get(uuid)
        self.db.execute("DELETE FROM warnings WHERE uuid=?", (uuid,))

"""The state store: rows by (project, name), transactions, migrations from the
foundation's schema."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields
from pathlib import Path

import pytest
import trio

from lxctl.errors import AlreadyExists, InvalidState, NotFound
from lxctl.state.records import (
    InstanceRecord,
    OperationRecord,
    PoolRecord,
    ProfileRecord,
    ProjectRecord,
    VolumeRecord,
)
from lxctl.state.sqlite import SQLiteStore, connect, migrate
from lxctl.state.sqlite.migrations import SCHEMA_VERSION
from lxctl.state.store import Tables


def _v1_database(path: Path) -> None:
    """A database as the foundation's daemon wrote it (schema version 1)."""
    db = connect(path)
    migrate(db, path, target=1)
    db.execute("INSERT INTO instances VALUES ('c1', 'container', 'x86_64', 'hi', ?, ?, ?, 0, "
               "1.5, 2.5, 'Running')", (json.dumps({"user.a": "b"}), "{}", '["default"]'))
    db.execute("INSERT INTO images VALUES ('abc123', 'abc123.tar', 10, 'x86_64', "
               "'container', '{}', 0, 0, 0)")
    db.execute("INSERT INTO image_aliases VALUES ('bb', 'abc123')")
    db.execute("INSERT INTO storage_pools VALUES ('default', 'dir', '{}', '')")
    db.execute("INSERT INTO profiles VALUES ('default', '{}', ?, 'Default')",
               (json.dumps({"root": {"type": "disk", "path": "/", "pool": "default"}}),))
    db.execute("INSERT INTO operations VALUES ('op1', 'Stopping c1', 'Running', 0, 0, "
               "'{}', '')")
    db.close()


async def test_a_foundation_database_is_migrated_forward(tmp_path: Path) -> None:
    path = tmp_path / "lxctl.db"
    _v1_database(path)
    with trio.fail_after(10):
        store = await SQLiteStore.open(path)
        try:
            assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            inst = await store.read(lambda t: t.instance_get("default", "c1"))
            assert (inst.project, inst.location, inst.description) == ("default", "none", "hi")
            assert inst.config == {"user.a": "b"} and inst.power_state == "Running"
            assert inst.created_at == 1.5 and inst.last_used_at == 2.5
            image = await store.read(lambda t: t.image_get("default", "bb"))
            assert image.fingerprint == "abc123" and image.aliases == ["bb"]
            assert [p.name for p in await store.read(lambda t: t.project_list())] == ["default"]
            profile = await store.read(lambda t: t.profile_get("default", "default"))
            assert profile.devices["root"]["pool"] == "default"
            # the root volume of the old instance is now a recorded volume of its pool
            (vol,) = await store.read(lambda t: t.volume_list("default", None))
            assert (vol.project, vol.type, vol.name) == ("default", "container", "c1")
            failed = await store.write(lambda t: t.operations_fail_running("restarted"))
            assert [op.id for op in failed] == ["op1"]
            assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
        finally:
            await store.close()


async def test_objects_are_keyed_by_project_and_name(tmp_path: Path) -> None:
    with trio.fail_after(10):
        store = await SQLiteStore.open(tmp_path / "db")
        try:
            assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            await store.write(lambda t: t.project_create(ProjectRecord("p2")))
            await store.write(lambda t: t.instance_create(InstanceRecord("c1")))
            await store.write(lambda t: t.instance_create(InstanceRecord("c1", project="p2")))
            with pytest.raises(AlreadyExists, match="Instance 'c1' in project 'p2'"):
                await store.write(lambda t: t.instance_create(InstanceRecord("c1",
                                                                             project="p2")))
            with pytest.raises(NotFound, match="Project 'nope'"):
                await store.write(lambda t: t.instance_create(InstanceRecord("c1",
                                                                             project="nope")))
            assert [r.key for r in await store.read(lambda t: t.instance_list(None))] == [
                ("default", "c1"), ("p2", "c1")]
            assert [r.key for r in await store.read(lambda t: t.instance_list("p2"))] == [
                ("p2", "c1")]
            rec = await store.read(lambda t: t.instance_get("p2", "c1"))
            rec.power_state = "Running"
            await store.write(lambda t: t.instance_update(rec))
            assert (await store.read(lambda t: t.instance_get("default", "c1"))).power_state \
                == "Stopped"
            await store.write(lambda t: t.instance_delete("p2", "c1"))
            with pytest.raises(NotFound, match="in project 'p2'"):
                await store.read(lambda t: t.instance_get("p2", "c1"))
            await store.write(lambda t: t.profile_create(ProfileRecord("x", project="p2")))
            with pytest.raises(NotFound):
                await store.read(lambda t: t.profile_get("default", "x"))
            await store.write(lambda t: t.operation_put(OperationRecord("op1", "x")))
            assert [o.id for o in await store.write(
                lambda t: t.operations_fail_running("r"))] == ["op1"]
        finally:
            await store.close()


async def test_a_write_is_one_transaction(tmp_path: Path) -> None:
    with trio.fail_after(10):
        store = await SQLiteStore.open(tmp_path / "db")
        try:
            await store.write(lambda t: t.pool_create(PoolRecord("default", "dir")))

            def two_rows_then_fail(t: Tables) -> None:
                t.instance_create(InstanceRecord("c1"))
                t.volume_create(VolumeRecord("default", "c1", "container"))
                t.instance_create(InstanceRecord("c1"))  # AlreadyExists: all is undone

            with pytest.raises(AlreadyExists):
                await store.write(two_rows_then_fail)
            assert await store.read(lambda t: t.instance_list(None)) == []
            assert await store.read(lambda t: t.volume_list(None, None)) == []
            def volume_then_pool(t: Tables) -> None:
                t.volume_create(VolumeRecord("default", "v", "custom"))
                t.pool_delete("default")

            with pytest.raises(InvalidState, match="in use"):  # a pool with volumes stays
                await store.write(volume_then_pool)
            assert [p.name for p in await store.read(lambda t: t.pool_list())] == ["default"]
        finally:
            await store.close()


async def test_a_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with trio.fail_after(10), pytest.raises(InvalidState, match="newer"):
        await SQLiteStore.open(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    db.close()


def test_an_instance_record_shows_every_field_but_its_power_state() -> None:
    rec = InstanceRecord("c1", config={"a": "1"}, devices={"d": {"type": "disk"}})
    api = rec.to_api()
    assert set(api) == {f.name for f in fields(InstanceRecord)} - {"power_state"}
    api["config"]["a"] = "2"
    api["devices"]["d"]["type"] = "nic"
    assert rec.config == {"a": "1"} and rec.devices == {"d": {"type": "disk"}}  # copies

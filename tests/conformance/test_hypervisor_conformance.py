"""Hypervisor driver conformance: an instance's life through the protocol, on a real
``dir`` volume."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from drivers import driver_classes

from lxctl.drivers.context import DriverContext
from lxctl.drivers.devices import DiskDevice, MountedVolume
from lxctl.drivers.hypervisor import ExecRequest, StreamInput
from lxctl.objects.idmap import from_subid
from lxctl.state.records import InstanceRecord

HYPERVISORS = driver_classes("hypervisor")


@pytest.fixture
def state_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="lxt-conform-"))
    d.chmod(0o711)  # unprivileged roots walk down to their rootfs
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("cls", HYPERVISORS)
def test_info_is_complete(cls: Any) -> None:
    info = cls.info
    assert info.name and info.instance_types <= {"container", "virtual-machine"}
    assert "disk" in info.device_types and info.hotplug <= info.device_types


@pytest.mark.parametrize("cls", HYPERVISORS)
async def test_instance_life(cls: Any, state_dir: Path) -> None:
    from lxctl.objects.images import busybox_facts, busybox_tarball

    idmap = from_subid() if os.geteuid() == 0 else None
    driver = cls(DriverContext(state_dir, "cf" + os.urandom(3).hex(), idmap))
    itype = sorted(cls.info.instance_types)[0]
    inst = InstanceRecord("lxt-conform", type=itype)
    rootfs = state_dir / "rootfs"
    with trio.fail_after(90):
        if cls.info.name != "lxc":
            rootfs.mkdir()
        else:  # a real busybox root, shifted like the dir driver does
            applets, version = await busybox_facts()
            busybox_tarball(state_dir / "bb.tar.gz", applets, version)
            from lxctl.execute import run
            from lxctl.objects.idmap import shift_tree

            await run(["tar", "-xf", state_dir / "bb.tar.gz", "-C", state_dir, "rootfs"])
            if driver.rootfs_idmap(inst) is not None:
                shift_tree(rootfs, idmap.uid_base, idmap.gid_base)  # type: ignore[union-attr]
        root = MountedVolume(rootfs)
        await driver.create(inst, root)
        try:
            await driver.start(inst, [DiskDevice("root", "/", root)])
            states = await driver.states([inst], full=True)
            assert states[inst.qualified_name].status == "Running"
            out: list[bytes] = []

            async def output(fd: int, data: bytes) -> None:
                out.append(data)

            send, stdin = trio.open_memory_channel[StreamInput](0)
            send.close()
            code = await driver.exec(inst, ExecRequest(["echo", "conform"], {}), stdin, output)
            assert code == (1 if cls.info.name.startswith("fake") else 0)
            assert b"".join(out) == b"conform\n"
            await driver.stop(inst, timeout=0, force=True)
            assert (await driver.states([inst], full=False))[inst.qualified_name].status \
                == "Stopped"
        finally:
            with trio.CancelScope(shield=True):
                await driver.delete(inst)
                await driver.close()

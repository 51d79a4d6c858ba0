"""Auth and network driver conformance."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from drivers import driver_classes

from lxctl.drivers.auth import PeerCertificate, PeerCredentials, PeerToken
from lxctl.drivers.context import DriverContext
from lxctl.drivers.devices import NicDevice
from lxctl.state.records import InstanceRecord, NetworkRecord

PEERS = {"unix": PeerCredentials(1, 0, 0), "certificate": PeerCertificate("ab" * 32),
         "token": PeerToken("secret")}


@pytest.mark.parametrize("cls", driver_classes("auth"))
async def test_auth_vouches_only_for_peers_of_its_kinds(cls: Any, tmp_path: Path) -> None:
    driver = cls(DriverContext(tmp_path, "conform", None))
    assert driver.info.peer_kinds <= set(PEERS)
    with trio.fail_after(10):
        for kind, peer in PEERS.items():
            identity = await driver.authenticate(peer)
            if kind not in driver.info.peer_kinds:
                assert identity is None, kind
        if "unix" in driver.info.peer_kinds:  # root on the local socket is an admin
            identity = await driver.authenticate(PEERS["unix"])
            assert identity is not None and identity.admin


# Real network drivers run in a network namespace of their own (unshare --net), never
# in the host's: a bridge, dnsmasq or nft table there would touch the root namespace.
CONFIG = {"bridge": {"ipv4.address": "10.251.77.1/24", "ipv4.nat": "false"},
          "macvlan": {"parent": "lo"}}


async def _plug_unplug(cls: Any, state_dir: Path) -> None:
    if cls.info.name == "ovn":  # its own OVN, in this (private) namespace
        from ovn_private import PrivateOvn

        ovn = PrivateOvn(state_dir / "ovn", None)
        ovn.run.mkdir()
        try:
            ovn.start()
            driver = cls(DriverContext(state_dir, "conform", None, ovn.settings()))
            await _plug_unplug_driver(driver)
        finally:
            ovn.stop()
        return
    await _plug_unplug_driver(cls(DriverContext(state_dir, "conform", None)))


async def _plug_unplug_driver(driver: Any) -> None:
    net = NetworkRecord("lxtnet0", driver.info.name, dict(CONFIG.get(driver.info.name, {})))
    with trio.fail_after(10):
        interfaces, networks = driver.depends_on(net)
        assert isinstance(interfaces, list) and isinstance(networks, list)
        net.config.update(await driver.create(net))
        await driver.start(net)
        nic = await driver.plug(net, InstanceRecord("c1"), "eth0", {"network": net.name})
        assert isinstance(nic, NicDevice) and nic.name == "eth0"
        adopt = getattr(driver, "adopt", None)
        if adopt is not None:  # after a daemon restart: the NIC that plug made
            assert await adopt(net, InstanceRecord("c1"), "eth0", {"network": net.name}) == nic
        await driver.unplug(net, InstanceRecord("c1"), nic)
        await driver.stop(net)
        await driver.delete(net)


@pytest.mark.parametrize("cls", driver_classes("network"))
async def test_network_plugs_nics_as_data(cls: Any, tmp_path: Path) -> None:
    if not cls.__module__.startswith("lxctl_plugins."):
        await _plug_unplug(cls, tmp_path)  # a fake: nothing on the host
        return
    here = Path(__file__).parent
    code = (f"import sys, trio, importlib; sys.path[:0] = [{str(here)!r}, "
            f"{str(here.parent / 'inprocess')!r}]"
            "\nfrom test_auth_network_conformance import _plug_unplug"
            f"\nmod = importlib.import_module({cls.__module__!r})"
            f"\ntrio.run(_plug_unplug, getattr(mod, {cls.__name__!r}), "
            f"__import__('pathlib').Path({str(tmp_path)!r}))")
    script = f"ip link set lo up && exec {sys.executable} -c \"$0\""
    proc = await trio.run_process(["unshare", "--net", "sh", "-c", script, code],
                                  capture_stderr=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]

"""Network ACLs through the API, on the in-process daemon with fake drivers: rules
checked before anything is stored, rule add/remove, in use, kept across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from inproc import RpcError, daemon, import_image

from lxctl.state.records import NetworkRecord


async def test_network_acls_rules_checks_and_users(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    with trio.fail_after(30):
        async with daemon(directory) as d:
            c = await d.client()
            with pytest.raises(RpcError, match="action must be one of allow, drop, reject"):
                await c.call("network_acl.create", name="web",
                             ingress=[{"action": "allow"}, {"action": "permit"}])
            assert await c.call("network_acl.list") == []  # nothing half-created
            await c.call("network_acl.create", name="web", description="web only",
                         ingress=[{"action": "allow", "protocol": "tcp",
                                   "destination_port": "80"}])
            with pytest.raises(RpcError, match="already has that ingress rule"):
                await c.call("network_acl.rule_add", name="web", direction="ingress",
                             rule={"action": "allow", "protocol": "tcp",
                                   "destination_port": "80"})
            await c.call("network_acl.rule_add", name="web", direction="ingress",
                         rule={"action": "allow", "protocol": "tcp",
                               "destination_port": "443"})
            with pytest.raises(RpcError, match="direction is ingress or egress"):
                await c.call("network_acl.rule_add", name="web", direction="inbound",
                             rule={"action": "drop"})
            with pytest.raises(RpcError, match="2 ingress rules of ACL 'web' match"):
                await c.call("network_acl.rule_remove", name="web", direction="ingress",
                             rule={"protocol": "tcp"})
            await c.call("network_acl.rule_remove", name="web", direction="ingress",
                         rule={"destination_port": "80"})
            acl = await c.call("network_acl.get", name="web")
            assert [r["destination_port"] for r in acl["ingress"]] == ["443"]
            assert acl["ingress"][0]["state"] == "enabled"

            await d.app.store.write(lambda t: t.network_create(
                NetworkRecord("net0", "fakenet")))
            with pytest.raises(RpcError, match=r"Unknown configuration key: security\.acls"):
                await c.call("network.update", name="net0", config={"security.acls": "web"})
            await import_image(c, "img")
            nic = {"eth0": {"type": "nic", "network": "net0", "security.acls": "web"}}
            await c.wait(await c.call("instance.create", image="img", name="c1", devices=nic))
            with pytest.raises(RpcError, match=r"in use by /1\.0/instances/c1"):
                await c.call("network_acl.delete", name="web")
            with pytest.raises(RpcError, match="does not apply network ACLs"):
                await c.wait(await c.call("instance.start", name="c1"))
        async with daemon(directory) as d:  # kept across a restart (schema v4)
            c = await d.client()
            acl = await c.call("network_acl.get", name="web")
            assert acl["description"] == "web only"
            assert acl["used_by"] == ["/1.0/instances/c1"]
            await c.call("instance.update", name="c1", devices={})
            await c.call("network_acl.delete", name="web")
            assert await c.call("network_acl.list") == []

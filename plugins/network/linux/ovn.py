"""The ``ovn`` network driver: a logical switch per network in the OVN northbound DB
(``network.ovn.northbound_connection`` in lxctld.toml), its subnet from
``ipv4.address`` (OVN's IPAM hands out the addresses, OVN's native DHCP serves them),
and a logical router holding the gateway address. NICs (nictype ovn) are veth pairs
made here: the host end is a port of the local Open vSwitch's integration bridge
(``network.ovn.integration_bridge``, br-int) whose ``external_ids:iface-id`` names the
logical switch port, the peer goes into the instance with its TX checksum offload off
and the Geneve-safe MTU (``bridge.mtu``, 1442).

Network ACLs (``security.acls`` on the network and on NICs) are OVN ACLs on the
logical switch, matched per logical port (``ovn_acl``). A northbound DB that does not
answer makes the network Unavailable with the reason (retried), never fatal.
Logical names carry the daemon id, so daemons sharing one northbound DB keep apart."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Any, ClassVar

from lxctl.public import (
    ConfigKey,
    DriverContext,
    DriverError,
    InstanceRecord,
    InvalidArgument,
    KeyType,
    NetworkAcl,
    NetworkInfo,
    NetworkRecord,
    NetworkState,
    NetworkStatus,
    NicDevice,
    Scope,
    Unavailable,
    is_true,
    netlink,
)

from . import links, ovn_acl, ovs, veth
from .bridge import _free_subnet, parse_ipv4, stable_mac
from .ovn_nb import Command, find, nbctl, pairs, quote, reachable

_N = Scope.NETWORK
GENEVE_MTU = "1442"


def _check_ipv4(value: str) -> None:
    if value != "auto":
        parse_ipv4(value)


def _check_mtu(value: str) -> None:
    if not value.isdigit() or not 1280 <= int(value) <= 65535:
        raise ValueError("an MTU is a number from 1280 to 65535")


OVN_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("ipv4.address", _N, validate=_check_ipv4,
              doc="The gateway address with the subnet's prefix (CIDR), or auto"),
    ConfigKey("ipv4.dhcp", _N, KeyType.BOOL, "true", live=True,
              doc="Whether OVN's native DHCP answers the NICs"),
    ConfigKey("ipv4.dhcp.expiry", _N, default="3600", live=True,
              doc="Lease time in seconds"),
    ConfigKey("bridge.mtu", _N, default=GENEVE_MTU, validate=_check_mtu, live=True,
              doc="MTU of the NICs (1442 leaves room for Geneve between hosts)"),
    ConfigKey("dns.domain", _N, default="lxctl", live=True,
              doc="Domain handed out by DHCP"),
    ConfigKey("network", _N,
              doc="Uplink: a bridge on the host (a bridge network's, or any) reached "
                  "through a logical router; none: isolated (the default)"),
    ConfigKey("uplink.ipv4.address", _N,
              doc="The router's address on the uplink's subnet (picked at create)"),
    ConfigKey("ipv4.nat", _N, KeyType.BOOL, live=True,
              doc="SNAT to the uplink address (default: true with an uplink)"),
    *ovn_acl.ACL_KEYS,
)


def _uplink_address(net: NetworkRecord, gateway: ipaddress.IPv4Interface
                    ) -> ipaddress.IPv4Address:
    """A stable address near the top of the uplink's subnet (below its broadcast)."""
    hosts = gateway.network.num_addresses - 2
    seed = int(hashlib.sha256(f"{net.project}/{net.name}".encode()).hexdigest(), 16)
    for attempt in range(min(hosts, 64)):
        candidate = gateway.network.broadcast_address - 1 - (seed + attempt) % min(hosts, 64)
        if candidate != gateway.ip:
            return candidate
    raise InvalidArgument(f"no free address for the router on {gateway.network}")


def acl_names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


class OvnDriver:
    info: ClassVar[NetworkInfo] = NetworkInfo(
        name="ovn", nic_types=frozenset({"ovn"}), config_keys=OVN_KEYS)

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.acls: dict[tuple[str, str], Mapping[str, NetworkAcl]] = {}

    @classmethod
    def probe(cls) -> str | None:
        import shutil

        missing = [t for t in ("ovn-nbctl", "ovs-vsctl") if shutil.which(t) is None]
        return f"{', '.join(missing)} not installed (ovn-central, openvswitch-switch)" \
            if missing else None

    # ------------------------------------------------------------------ settings, names
    @property
    def nb(self) -> str:
        return self.ctx.settings.get("network.ovn.northbound_connection", "")

    @property
    def ovs_db(self) -> str:
        return self.ctx.settings.get("network.ovs.connection", "")

    @property
    def integration_bridge(self) -> str:
        return self.ctx.settings.get("network.ovn.integration_bridge", "") or "br-int"

    def switch(self, net: NetworkRecord) -> str:
        project = "" if net.project == "default" else f"{net.project}-"
        return f"lxctl-{self.ctx.daemon_id}-{project}{net.name}"

    def port(self, net: NetworkRecord, inst: InstanceRecord, device: str) -> str:
        digest = hashlib.sha256(f"{inst.project}/{inst.name}/{device}".encode()).hexdigest()
        return f"{self.switch(net)}-{digest[:10]}"

    def uplink(self, net: NetworkRecord) -> str | None:
        value = net.config.get("network", "none")
        return None if value in ("", "none") else value

    def depends_on(self, net: NetworkRecord) -> tuple[list[str], list[str]]:
        uplink = self.uplink(net)
        return [] if uplink is None else [uplink], []

    # ------------------------------------------------------------------ create / up
    async def create(self, net: NetworkRecord) -> dict[str, str]:
        out: dict[str, str] = {}
        if net.config.get("ipv4.address", "auto") == "auto":
            out["ipv4.address"] = str(_free_subnet(net.name, await links.call(
                links.host_networks)))
        for key in ("bridge.mtu", "ipv4.dhcp"):
            if key not in net.config:
                out[key] = {"bridge.mtu": GENEVE_MTU, "ipv4.dhcp": "true"}[key]
        uplink = self.uplink(net)
        if uplink is not None:
            gateway = await self._uplink_gateway(uplink, InvalidArgument)
            if "ipv4.nat" not in net.config:
                out["ipv4.nat"] = "true"
            given = net.config.get("uplink.ipv4.address")
            if given:
                if ipaddress.IPv4Address(given) not in gateway.network or \
                        ipaddress.IPv4Address(given) == gateway.ip:
                    raise InvalidArgument(f"uplink.ipv4.address {given} is not a host address "
                                          f"of the uplink's subnet {gateway.network}",
                                          network=net.name)
            else:
                out["uplink.ipv4.address"] = str(_uplink_address(net, gateway))
        return out

    async def _uplink_gateway(self, uplink: str, error: type[Exception]
                              ) -> ipaddress.IPv4Interface:
        link = await links.call(links.counters, uplink)
        if link is None:
            raise error(f"uplink interface {uplink!r} not found")
        found = [ipaddress.ip_interface(a) for a in link["addresses"]]
        v4 = [a for a in found if isinstance(a, ipaddress.IPv4Interface)]
        if not v4:
            raise error(f"uplink interface {uplink!r} has no IPv4 address")
        return v4[0]

    async def _connected(self) -> None:
        if not self.nb:
            raise Unavailable("no OVN northbound DB configured "
                              "(network.ovn.northbound_connection in lxctld.toml)")
        why = await reachable(self.nb)
        if why is not None:
            raise Unavailable(f"OVN northbound DB {self.nb} unreachable: {why}")

    async def start(self, net: NetworkRecord) -> None:
        await self._connected()
        gateway = parse_ipv4(net.config["ipv4.address"])
        switch, router = self.switch(net), self.switch(net) + "-lr"
        lrp, lsp = router + "-port", switch + "-router"
        mac = stable_mac(net.project, net.name, "router")
        ids = {"lxctl-network": net.name, "lxctl-project": net.project,
               "lxctl-uplink": self.uplink(net) or ""}
        commands: list[Command] = [
            ["--may-exist", "ls-add", switch],
            ["set", "logical_switch", switch, *pairs("external_ids", ids),
             f"other_config:subnet={gateway.network}",
             f"other_config:exclude_ips={gateway.ip}"],
            ["--may-exist", "lr-add", router],
            ["set", "logical_router", router, *pairs("external_ids", ids)],
            ["--if-exists", "lrp-del", lrp],
            ["lrp-add", router, lrp, mac, str(gateway)],
            ["--may-exist", "lsp-add", switch, lsp],
            ["lsp-set-type", lsp, "router"],
            ["lsp-set-addresses", lsp, "router"],
            ["lsp-set-options", lsp, f"router-port={lrp}"],
        ]
        uplink = self.uplink(net)
        if uplink is not None:
            commands += await self._uplink_commands(net, uplink, router)
        await nbctl(self.nb, *commands)
        await self._dhcp(net, gateway, mac)
        await self.render_acls(net)

    async def _uplink_commands(self, net: NetworkRecord, uplink: str, router: str
                               ) -> list[Command]:
        """Host side: the uplink bridge joined to a provider OVS bridge (a veth pair,
        offload off on both ends) mapped for OVN (``ovn-bridge-mappings``); OVN side: an
        external switch with a localnet port, the router's port on it bound to this
        chassis, a default route to the uplink's address, SNAT unless ipv4.nat=false."""
        gateway = await self._uplink_gateway(uplink, Unavailable)
        digest = hashlib.sha256(uplink.encode()).hexdigest()[:8]
        provider, ovs_end, bridge_end = f"lxup{digest}", f"lxu{digest}a", f"lxu{digest}b"
        physnet = f"lxctl-{uplink}"
        try:
            if not await links.call(links.exists, ovs_end):
                await links.call(veth.create_pair, ovs_end, bridge_end, None, None, False)
                await links.call(veth.tx_checksums_off, ovs_end)
            await links.call(links.enslave, uplink, [bridge_end])
        except netlink.error() as exc:
            raise Unavailable(f"cannot join uplink {uplink!r}: {exc.args[-1]}") from None
        await ovs.ensure_bridge(self.ovs_db, provider)
        await ovs.add_port(self.ovs_db, provider, ovs_end)
        mappings = (await ovs.vsctl(self.ovs_db, "--if-exists", "get", "open_vswitch", ".",
                                    "external_ids:ovn-bridge-mappings")).stdout.decode()
        have = dict(m.split(":", 1) for m in mappings.strip().strip('"').split(",") if m)
        if have.get(physnet) != provider:
            have[physnet] = provider
            await ovs.set_open_vswitch(self.ovs_db, {"ovn-bridge-mappings": ",".join(
                f"{k}:{v}" for k, v in sorted(have.items()))})
        chassis = (await ovs.vsctl(self.ovs_db, "get", "open_vswitch", ".",
                                   "external_ids:system-id")).stdout.decode().strip().strip('"')
        ext, lrp = self.switch(net) + "-ext", router + "-ext"
        address = ipaddress.IPv4Address(net.config["uplink.ipv4.address"])
        subnet = parse_ipv4(net.config["ipv4.address"]).network
        commands: list[Command] = [
            ["--may-exist", "ls-add", ext],
            ["--may-exist", "lsp-add", ext, ext + "-localnet"],
            ["lsp-set-type", ext + "-localnet", "localnet"],
            ["lsp-set-addresses", ext + "-localnet", "unknown"],
            ["lsp-set-options", ext + "-localnet", f"network_name={physnet}"],
            ["--if-exists", "lrp-del", lrp],
            ["lrp-add", router, lrp, stable_mac(net.project, net.name, "uplink"),
             f"{address}/{gateway.network.prefixlen}"],
            ["lrp-set-gateway-chassis", lrp, chassis, "1"],
            ["--may-exist", "lsp-add", ext, ext + "-router"],
            ["lsp-set-type", ext + "-router", "router"],
            ["lsp-set-addresses", ext + "-router", "router"],
            ["lsp-set-options", ext + "-router", f"router-port={lrp}"],
            ["--may-exist", "lr-route-add", router, "0.0.0.0/0", str(gateway.ip)],
            ["--may-exist", "lr-nat-add", router, "snat", str(address), str(subnet)]
            if is_true(net.config.get("ipv4.nat", "true"))
            else ["--if-exists", "lr-nat-del", router, "snat", str(subnet)],
        ]
        return commands

    async def _dhcp(self, net: NetworkRecord, gateway: ipaddress.IPv4Interface,
                    mac: str) -> None:
        switch = self.switch(net)
        rows = await find(self.nb, "dhcp_options", "_uuid", **{"lxctl-switch": switch})
        if not is_true(net.config.get("ipv4.dhcp", "true")):
            if rows:
                await nbctl(self.nb, *(["destroy", "dhcp_options", r[0]] for r in rows))
            return
        options = {"lease_time": net.config.get("ipv4.dhcp.expiry", "3600"),
                   "router": str(gateway.ip), "server_id": str(gateway.ip),
                   "server_mac": mac, "mtu": net.config.get("bridge.mtu", GENEVE_MTU),
                   "domain_name": quote(net.config.get("dns.domain", "lxctl"))}
        if rows:
            uuid = rows[0][0]
        else:
            out = await nbctl(self.nb, ["create", "dhcp_options", f"cidr={gateway.network}",
                                        *pairs("external_ids", {"lxctl-switch": switch})])
            uuid = out.stdout.decode().strip()
        await nbctl(self.nb, ["set", "dhcp_options", uuid, f"cidr={gateway.network}"],
                    ["dhcp-options-set-options", uuid,
                     *(f"{k}={v}" for k, v in options.items())])

    async def stop(self, net: NetworkRecord) -> None:
        if not self.nb or await reachable(self.nb) is not None:
            return
        switch = self.switch(net)
        rows = await find(self.nb, "dhcp_options", "_uuid", **{"lxctl-switch": switch})
        await nbctl(self.nb, ["--if-exists", "ls-del", switch],
                    ["--if-exists", "ls-del", switch + "-ext"],
                    ["--if-exists", "lr-del", switch + "-lr"],
                    *(["destroy", "dhcp_options", r[0]] for r in rows))
        await self._release_uplink(self.uplink(net))

    async def update(self, net: NetworkRecord, old_config: Mapping[str, str]) -> None:
        old_uplink = self.uplink(NetworkRecord(net.name, net.type, dict(old_config)))
        if old_uplink != self.uplink(net) and old_uplink is not None:
            router = self.switch(net) + "-lr"
            await nbctl(self.nb, ["--if-exists", "ls-del", self.switch(net) + "-ext"],
                        ["--if-exists", "lrp-del", router + "-ext"],
                        ["--if-exists", "lr-route-del", router],
                        ["--if-exists", "lr-nat-del", router])
        await self.start(net)
        if old_uplink != self.uplink(net):
            await self._release_uplink(old_uplink)

    async def _release_uplink(self, uplink: str | None) -> None:
        """Once no OVN network uses ``uplink``: its provider bridge, veth pair and
        bridge mapping go."""
        if uplink is None or await find(self.nb, "logical_switch", "name",
                                        **{"lxctl-uplink": uplink}):
            return
        digest = hashlib.sha256(uplink.encode()).hexdigest()[:8]
        await ovs.delete_bridge(self.ovs_db, f"lxup{digest}")
        await links.call(links.delete, f"lxu{digest}a")
        mappings = (await ovs.vsctl(self.ovs_db, "--if-exists", "get", "open_vswitch", ".",
                                    "external_ids:ovn-bridge-mappings")).stdout.decode()
        kept = [m for m in mappings.strip().strip('"').split(",")
                if m and not m.startswith(f"lxctl-{uplink}:")]
        if kept:
            await ovs.set_open_vswitch(self.ovs_db, {"ovn-bridge-mappings": ",".join(kept)})
        else:
            await ovs.vsctl(self.ovs_db, "remove", "open_vswitch", ".", "external_ids",
                            "ovn-bridge-mappings")

    async def delete(self, net: NetworkRecord) -> None:
        await self.stop(net)
        self.acls.pop((net.project, net.name), None)

    async def state(self, net: NetworkRecord) -> NetworkState:
        try:
            await self._connected()
        except Unavailable as exc:
            return NetworkState(NetworkStatus.UNAVAILABLE, str(exc))
        out = await nbctl(self.nb, ["get", "logical_switch", self.switch(net), "_uuid"],
                          check=False)
        if out.ok:
            return NetworkState(NetworkStatus.CREATED)
        return NetworkState(NetworkStatus.PENDING, f"logical switch {self.switch(net)} "
                            "not found")

    # ------------------------------------------------------------------ NICs
    async def plug(self, net: NetworkRecord, inst: InstanceRecord, device: str,
                   config: Mapping[str, str]) -> NicDevice:
        if not self.nb:
            await self._connected()  # raises, naming the missing setting
        gateway = parse_ipv4(net.config["ipv4.address"])
        address = config.get("ipv4.address")
        if address:
            try:
                ip = ipaddress.IPv4Address(address)
            except ValueError:
                raise InvalidArgument(f"Device {device!r}: ipv4.address {address!r} is not "
                                      "an IPv4 address", device=device) from None
            if ip not in gateway.network or ip in (gateway.ip, gateway.network.network_address,
                                                   gateway.network.broadcast_address):
                raise InvalidArgument(
                    f"Device {device!r}: ipv4.address {address} is not a host address of "
                    f"network {net.name!r} ({gateway.network}) other than its gateway",
                    device=device)
        switch, port = self.switch(net), self.port(net, inst, device)
        nic = self._nic(net, inst, device, config)
        hwaddr, host, peer = nic.hwaddr or "", nic.host_name or "", nic.link or ""
        ids = {"lxctl-switch": switch, "lxctl-instance": f"{inst.project}/{inst.name}",
               "lxctl-device": device, "lxctl-acls": ",".join(acl_names(
                   config.get("security.acls"))), "lxctl-host": inst.name}
        commands: list[Command] = [
            ["--may-exist", "lsp-add", switch, port],
            ["lsp-set-addresses", port, f"{hwaddr} {address or 'dynamic'}"],
            ["set", "logical_switch_port", port, *pairs("external_ids", ids)],
        ]
        try:  # the first call to the DB: a DB that does not answer is Unavailable
            dhcp = await find(self.nb, "dhcp_options", "_uuid", **{"lxctl-switch": switch})
        except DriverError as exc:
            raise Unavailable(f"OVN northbound DB {self.nb} unreachable: {exc}") from None
        if dhcp:
            commands.append(["lsp-set-dhcpv4-options", port, dhcp[0][0]])
        await nbctl(self.nb, *commands)
        try:
            await links.call(veth.create_pair, host, peer, nic.mtu, hwaddr, False)
            await ovs.add_port(self.ovs_db, self.integration_bridge, host,
                               {"iface-id": port, "lxctl-instance": inst.name})
            if ids["lxctl-acls"] or net.config.get("security.acls"):
                await self.render_acls(net)  # else the port has none: nothing to render
        except BaseException as exc:
            await self._unplug(port, host)
            if isinstance(exc, netlink.error()):
                raise DriverError(f"Device {device!r}: cannot make its veth pair: "
                                  f"{exc.args[-1]}") from None
            raise
        return nic

    def _nic(self, net: NetworkRecord, inst: InstanceRecord, device: str,
             config: Mapping[str, str]) -> NicDevice:
        port = self.port(net, inst, device)
        return NicDevice(
            name=device, kind="phys", link="ovp" + port[-10:],
            host_name=config.get("host_name") or "ovn" + port[-10:],
            hwaddr=config.get("hwaddr") or stable_mac(inst.project, inst.name, device),
            mtu=int(config.get("mtu") or net.config.get("bridge.mtu", GENEVE_MTU)),
            name_in_instance=config.get("name", device))

    async def adopt(self, net: NetworkRecord, inst: InstanceRecord, device: str,
                    config: Mapping[str, str]) -> NicDevice:
        """The NIC ``plug`` made before the daemon restarted (its logical switch port,
        veth pair and integration bridge port are in place)."""
        return self._nic(net, inst, device, config)

    async def _unplug(self, port: str, host: str) -> None:
        await ovs.delete_port(self.ovs_db, host)
        await links.call(links.delete, host)
        if self.nb and await reachable(self.nb) is None:
            await nbctl(self.nb, ["--if-exists", "lsp-del", port])

    async def unplug(self, net: NetworkRecord, inst: InstanceRecord, nic: NicDevice) -> None:
        await self._unplug(self.port(net, inst, nic.name), nic.host_name or "")
        if self.nb and await reachable(self.nb) is None:
            await self.render_acls(net)

    # ------------------------------------------------------------------ ACLs
    async def apply_acls(self, net: NetworkRecord, acls: Mapping[str, NetworkAcl]) -> None:
        """The project's ACLs (by name) changed or the network's did: render again."""
        self.acls[(net.project, net.name)] = acls
        await self.render_acls(net)

    async def render_acls(self, net: NetworkRecord) -> None:
        """Replace the switch's OVN ACLs by those of the network's and NICs' ACLs, one
        transaction; ports without any ACL are left open."""
        switch = self.switch(net)
        known = self.acls.get((net.project, net.name), {})
        rows = await find(self.nb, "logical_switch_port", "name,external_ids",
                          **{"lxctl-switch": switch})
        ports = {row[0]: acl_names(_external(row[1]).get("lxctl-acls")) for row in rows}
        network_acls = acl_names(net.config.get("security.acls"))
        commands: list[Command] = [["acl-del", switch]]
        defaults = (net.config.get("security.acls.default.ingress.action", "reject"),
                    net.config.get("security.acls.default.egress.action", "reject"))
        for port, own in sorted(ports.items()):
            names = list(dict.fromkeys(network_acls + own))
            applied = [known[n] for n in names if n in known]
            for direction, priority, action, match, log in ovn_acl.render(port, applied,
                                                                          *defaults):
                commands.append([*(["--log", f"--name={log}"] if log else []), "acl-add",
                                 switch, direction, str(priority), match, action])
        await nbctl(self.nb, *commands)

    # ------------------------------------------------------------------ views
    async def leases(self, net: NetworkRecord) -> list[dict[str, Any]]:
        if not self.nb or await reachable(self.nb) is not None:
            return []
        gateway = parse_ipv4(net.config["ipv4.address"])
        out: list[dict[str, Any]] = [{"hostname": f"{net.name}.gw", "hwaddr": "",
                                      "address": str(gateway.ip), "type": "gateway"}]
        rows = await find(self.nb, "logical_switch_port",
                          "addresses,dynamic_addresses,external_ids",
                          **{"lxctl-switch": self.switch(net)})
        for addresses, dynamic, ids in rows:
            fixed = addresses.split()
            words = dynamic.split() if len(fixed) < 2 or fixed[1] == "dynamic" else fixed
            if len(words) >= 2:
                out.append({"hostname": _external(ids).get("lxctl-host", ""),
                            "hwaddr": words[0], "address": words[1],
                            "type": "dynamic" if fixed[1:2] == ["dynamic"] else "static"})
        return out

    async def interface(self, name: str) -> dict[str, Any] | None:
        return await links.call(links.counters, name)


def _external(bare: str) -> dict[str, str]:
    """``--data=bare`` external_ids: ``k=v`` words separated by spaces."""
    out = {}
    for word in bare.split():
        k, _, v = word.partition("=")
        out[k] = v
    return out

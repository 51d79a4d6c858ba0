"""Open vSwitch through ``ovs-vsctl`` (the subprocess helper): bridges and ports with
their external ids. ``db`` is ``ovs-vsctl --db`` ("" for its default socket): tests and
daemons in a namespace of their own run a private ovsdb-server and ovs-vswitchd.

Shared by the drivers of this package that plug into OVS (OVN's integration bridge,
``bridge.driver=openvswitch``)."""

from __future__ import annotations

from collections.abc import Mapping

from lxctl.public import Outcome, run

TIMEOUT = 10


def argv(db: str, *args: str) -> list[str]:
    return ["ovs-vsctl", *([f"--db={db}"] if db else []), f"--timeout={TIMEOUT}", *args]


async def vsctl(db: str, *args: str, check: bool = True) -> Outcome:
    return await run(argv(db, *args), check=check, timeout=TIMEOUT + 5)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def reachable(db: str) -> str | None:
    """None when the OVS DB answers, else why not (its error)."""
    out = await vsctl(db, "--no-wait", "show", check=False)
    return None if out.ok else (out.tail() or f"exit {out.returncode}")


async def ensure_bridge(db: str, bridge: str, datapath_type: str = "netdev",
                        other: Mapping[str, str] | None = None) -> None:
    """The bridge, on the userspace datapath unless told (no OVS kernel module here)."""
    sets = [f"datapath_type={datapath_type}",
            *(f"{k}={v}" for k, v in (other or {}).items())]
    await vsctl(db, "--may-exist", "add-br", bridge, "--", "set", "bridge", bridge, *sets)


async def delete_bridge(db: str, bridge: str) -> None:
    await vsctl(db, "--if-exists", "del-br", bridge)


async def add_port(db: str, bridge: str, port: str,
                   external_ids: Mapping[str, str] | None = None, tag: int | None = None
                   ) -> None:
    """Add a host interface as a port (again if it exists), with its interface's
    external ids (``iface-id`` binds it to an OVN logical port) and VLAN tag."""
    args = ["--may-exist", "add-port", bridge, port]
    if tag is not None:
        args += [f"tag={tag}"]
    if external_ids:
        args += ["--", "set", "interface", port,
                 *(f"external_ids:{k}={_quote(v)}" for k, v in external_ids.items())]
    await vsctl(db, *args)


async def delete_port(db: str, port: str) -> None:
    await vsctl(db, "--if-exists", "del-port", port)


async def set_open_vswitch(db: str, external_ids: Mapping[str, str]) -> None:
    await vsctl(db, "set", "open_vswitch", ".",
                *(f"external_ids:{k}={_quote(v)}" for k, v in external_ids.items()))

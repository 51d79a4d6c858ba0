"""``lxctl list``: instances as a table, csv, json ... with Incus's columns and filters.

A module of its own, light to import (scripts and benchmarks poll ``list``): its flags
are parsed by hand where that reads them exactly as argparse would (as ``launch``'s),
else by argparse; no ``re`` unless a filter is a regular expression, no ``datetime``,
no ``csv``, no ``typing``."""

from __future__ import annotations

from lxctl.cli import values
from lxctl.cli.connection import connect
from lxctl.cli.output import check_format, render_rows, size, write

TYPE_CHECKING = False  # typing costs ~2 ms per client start; checkers see True
if TYPE_CHECKING:
    from typing import Any

    from lxctl.cli.args import ArgumentParser

DEFAULT_COLUMNS = "ns46tS"
COLUMNS: dict[str, str] = {
    "n": "NAME", "s": "STATE", "4": "IPV4", "6": "IPV6", "t": "TYPE", "S": "SNAPSHOTS",
    "a": "ARCHITECTURE", "b": "STORAGE POOL", "c": "CREATED AT", "d": "DESCRIPTION",
    "f": "BASE IMAGE", "F": "BASE IMAGE", "l": "LAST USED AT", "m": "MEMORY USAGE",
    "N": "PROCESSES", "p": "PID", "P": "PROFILES", "u": "CPU USAGE", "e": "PROJECT",
}
NEEDS_STATE = set("46mNpu")


# ---------------------------------------------------------------------------- list
def _addresses(inst: dict[str, Any], family: str) -> str:
    lines = []
    for iface, net in sorted((inst.get("state") or {}).get("network", {}).items()):
        for addr in net.get("addresses", []):
            if addr["family"] == family and addr.get("scope") == "global":
                lines.append(f"{addr['address']} ({iface})")
    return "\n".join(lines)


def date(value: str) -> str:
    """An API time (``2026-12-02T15:41:56.1Z``) as Incus's tables show it
    (``2026/12/02 15:41 UTC``); empty for "never"; anything else as it is."""
    if not value or value.startswith(("0001", "1970")):
        return ""
    digits = value[0:4] + value[5:7] + value[8:10] + value[11:13] + value[14:16]
    if len(value) < 19 or not digits.isdigit() or value[4] + value[7] + value[10] != "--T":
        return value
    return f"{value[0:4]}/{value[5:7]}/{value[8:10]} {value[11:16]} UTC"


def _cell(inst: dict[str, Any], col: str) -> str:
    state = inst.get("state") or {}
    config = inst.get("config", {})
    if col == "n":
        return str(inst["name"])
    if col == "s":
        return str(inst["status"]).upper()
    if col == "4":
        return _addresses(inst, "inet")
    if col == "6":
        return _addresses(inst, "inet6")
    if col == "t":
        kind = "CONTAINER" if inst["type"] == "container" else "VIRTUAL-MACHINE"
        return kind + (" (EPHEMERAL)" if inst.get("ephemeral") else "")
    if col == "S":
        return str(len(inst.get("snapshots") or []))
    if col == "a":
        return str(inst.get("architecture", ""))
    if col == "b":
        return str(inst.get("expanded_devices", {}).get("root", {}).get("pool", ""))
    if col == "c":
        return date(inst.get("created_at", ""))
    if col == "l":
        return date(inst.get("last_used_at", ""))
    if col == "d":
        return str(inst.get("description", ""))
    if col in "fF":
        fp = str(config.get("volatile.base_image", ""))
        return fp[:12] if col == "f" else fp
    if col == "m":
        usage = (state.get("memory") or {}).get("usage", 0)
        return size(usage) if usage else ""
    if col == "N":
        n = state.get("processes", -1)
        return str(n) if n >= 0 and inst["status"] != "Stopped" else ""
    if col == "p":
        pid = state.get("pid", -1)
        return str(pid) if pid and pid > 0 else ""
    if col == "P":
        return "\n".join(inst.get("profiles", []))
    if col == "u":
        ns = (state.get("cpu") or {}).get("usage", 0)
        return f"{ns // 10**9}s" if ns else ""
    if col == "e":
        return str(inst.get("project", "default"))
    raise ValueError(f"Unknown column {col!r}")


def _matches(inst: dict[str, Any], filters: list[str]) -> bool:
    for f in filters:
        key, sep, value = f.partition("=")
        if sep:
            if key in ("status", "state"):
                if inst["status"].lower() != value.lower():
                    return False
            elif key == "type":
                if inst["type"] != value:
                    return False
            elif inst.get("expanded_config", inst.get("config", {})).get(key) != value:
                return False
        elif not inst["name"].startswith(f):
            import re  # only for filters that are no prefix

            if not re.fullmatch(f, inst["name"]):
                return False
    return True


def parser(command: str) -> ArgumentParser:
    """The argparse parser: for help and for whatever :func:`quick_parse` leaves."""
    from lxctl.cli.args import ArgumentParser

    p = ArgumentParser(prog=f"lxctl {command}", description="List instances")
    p.add_argument("filters", nargs="*")
    p.add_argument("-f", "--format", default="table")
    p.add_argument("-c", "--columns", default=DEFAULT_COLUMNS)
    p.add_argument("--fast", action="store_true")
    p.add_argument("--all-projects", action="store_true")
    return p


FLAGS: dict[str, tuple[str, bool]] = {  # flag -> (destination, takes a value)
    "-f": ("format", True), "--format": ("format", True),
    "-c": ("columns", True), "--columns": ("columns", True),
    "--fast": ("fast", False), "--all-projects": ("all_projects", False),
}


def quick_parse(args: list[str]) -> dict[str, Any] | None:
    """The options as argparse would give them, or None where that is not sure
    (then argparse decides, and its errors are the ones shown)."""
    parsed = values.quick_parse(args, FLAGS, {"format": "table", "columns": DEFAULT_COLUMNS,
                                              "fast": False, "all_projects": False})
    return None if parsed is None else {"filters": parsed[1], **parsed[0]}


def list_(command: str, args: list[str]) -> int:
    opts = quick_parse(args)
    if opts is None:
        opts = vars(parser(command).parse_args(args))
    check_format(opts["format"])
    columns = "nsacPt" if opts["fast"] else opts["columns"].replace(",", "")
    if opts["all_projects"] and opts["columns"] == DEFAULT_COLUMNS and not opts["fast"]:
        columns = "e" + columns  # Incus adds PROJECT first
    if "L" in columns:
        raise ValueError("Can't specify column L when not clustered")
    for col in columns:
        if col not in COLUMNS:
            raise ValueError(f"Unknown column shorthand char '{col}' in '{opts['columns']}'")
    full = opts["format"] in ("json", "yaml") or bool(NEEDS_STATE & set(columns))
    instances = connect().call("instance.list", {"full": full,
                                                  "all_projects": opts["all_projects"]})
    instances = [i for i in instances if _matches(i, opts["filters"])]
    rows = [[_cell(i, c) for c in columns] for i in instances]
    write(render_rows(opts["format"], [COLUMNS[c] for c in columns], rows, instances))
    return 0

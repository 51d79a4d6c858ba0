"""Values in config keys: booleans and sizes, as Incus writes them."""

from __future__ import annotations

import re

from lxctl.errors import InvalidArgument

SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|kB|MB|GB|TB|KiB|MiB|GiB|TiB)?$")
BOOLEAN = ("true", "false", "1", "0", "yes", "no", "on", "off")
_UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def is_true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes", "on")


def parse_size(value: str) -> int:
    m = SIZE.match(value)
    if not m:
        raise InvalidArgument(f"Invalid size {value!r}")
    number = float(value.rstrip("BkMGTi ").strip()) if m.group(2) else float(value)
    return int(number * _UNITS[m.group(2) or "B"])

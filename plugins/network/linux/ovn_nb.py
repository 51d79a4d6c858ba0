"""The OVN northbound DB through ``ovn-nbctl`` (the subprocess helper): argv
construction and output parsing, one ``ovn-nbctl`` call per transaction (commands
chained with ``--`` are applied atomically).

ovn-nbctl rather than ovsdbapp: a network change is one short atomic transaction, the
daemon keeps no IDL replica (and no thread of its own) per connection, a lost DB
is an exit code with the reason, and nothing new is installed beside OVN itself."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

from lxctl.public import Outcome, run

TIMEOUT = 10
Command = Sequence[str]


def argv(db: str, commands: Sequence[Command], *, wait: bool = False) -> list[str]:
    out = ["ovn-nbctl", f"--db={db}", f"--timeout={TIMEOUT}"]
    if not wait:
        out.append("--no-wait")
    for i, cmd in enumerate(commands):
        if i:
            out.append("--")
        out.extend(cmd)
    return out


async def nbctl(db: str, *commands: Command, check: bool = True, wait: bool = False
                ) -> Outcome:
    return await run(argv(db, commands, wait=wait), check=check, timeout=TIMEOUT + 5)


def quote(value: str) -> str:
    """An OVSDB string value, quoted for ovn-nbctl's argument syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pairs(column: str, values: Mapping[str, str]) -> list[str]:
    return [f"{column}:{k}={quote(v)}" for k, v in values.items()]


async def reachable(db: str) -> str | None:
    """None when the NB DB answers, else why not."""
    out = await nbctl(db, ["ls-list"], check=False)
    return None if out.ok else (out.tail() or f"exit {out.returncode}")


async def find(db: str, table: str, columns: str, **external_ids: str) -> list[list[str]]:
    """Rows of ``table`` whose external ids match, the ``columns`` of each (bare)."""
    cond = [f"external_ids:{k}={quote(v)}" for k, v in external_ids.items()]
    out = await nbctl(db, ["--format=csv", "--data=bare", "--no-headings",
                           f"--columns={columns}", "find", table, *cond])
    return [row for row in csv.reader(io.StringIO(out.stdout.decode())) if row]

"""Output formats of list commands: table, compact, csv, json, yaml (as Incus).

Light to import (no ``csv``, which imports ``re``, nor ``typing``): ``list`` is a hot
path, and benchmarks poll it."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs ~2 ms per client start; checkers see True
if TYPE_CHECKING:
    from typing import Any

FORMATS = ("table", "compact", "csv", "json", "yaml")


def check_format(fmt: str) -> tuple[str, bool | None]:
    """Split ``csv,header`` / ``table,noheader``; return (format, header override)."""
    name, _, option = fmt.partition(",")
    if name not in FORMATS:
        raise ValueError(f"Invalid format {name!r} (use one of: {', '.join(FORMATS)})")
    if option not in ("", "header", "noheader"):
        raise ValueError(f"Invalid format option {option!r} (use header or noheader)")
    return name, None if not option else option == "header"


def render_rows(fmt: str, header: list[str], rows: list[list[str]], raw: Any) -> str:
    name, header_opt = check_format(fmt)
    if name == "json":
        from lxctl.cli import wire

        return wire.dumps(raw).decode() + "\n"
    if name == "yaml":
        import yaml

        return str(yaml.safe_dump(raw, sort_keys=False, default_flow_style=False))
    if name == "csv":
        return "".join(csv_line(r) for r in ([header] if header_opt else []) + rows)
    show_header = header_opt is not False
    if name == "compact":
        grid = ([header] if show_header else []) + rows
        widths = [max(len(line) for r in grid for line in r[i].split("\n") or [""])
                  for i in range(len(header))]
        return "".join(
            "  ".join(c.split("\n")[0].ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            + "\n" for r in grid)
    return table(header if show_header else None, rows)


def csv_line(row: list[str]) -> str:
    """One row as Python's ``csv.writer`` (excel dialect, QUOTE_MINIMAL) writes it with
    ``lineterminator="\\n"``: a field holding a comma, a quote or a newline is
    quoted, its quotes doubled; a row of one empty field is ``""``."""
    if row == [""]:
        return '""\n'
    return ",".join('"' + f.replace('"', '""') + '"' if any(c in f for c in ',"\n')
                    else f for f in row) + "\n"


def table(header: list[str] | None, rows: list[list[str]]) -> str:
    """Incus's table: +---+ borders, centred header, a rule between rows."""
    cols = len(header) if header else (len(rows[0]) if rows else 0)
    cells = [[c.split("\n") for c in r] for r in rows]
    widths = [0] * cols
    for r in ([[[h] for h in header]] if header else []) + cells:
        for i, lines in enumerate(r):
            widths[i] = max(widths[i], *(len(line) for line in lines))
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"
    out = [rule]
    if header:
        out.append("|" + "|".join(f" {h.center(w)} " for h, w in zip(header, widths,
                                                                      strict=True)) + "|\n")
        out.append(rule)
    for r in cells:
        height = max(len(lines) for lines in r) if r else 1
        for n in range(height):
            out.append("|" + "|".join(
                f" {(lines[n] if n < len(lines) else '').ljust(w)} "
                for lines, w in zip(r, widths, strict=True)) + "|\n")
        out.append(rule)
    return "".join(out)


def size(n: int) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value = float(n)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.2f}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1024
    return f"{n}B"


def write(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        pass

"""``lxctl list``: the hand parser reads what argparse would, or leaves it; a plain
list imports nothing heavy; csv output is the csv module's; dates as Incus shows them."""

from __future__ import annotations

import csv
import io

import pytest
from cli_imports import HEAVY, heavy_imports

from lxctl.cli.args import UsageError
from lxctl.cli.commands.listing import date, parser, quick_parse
from lxctl.cli.output import csv_line

COMMON = [  # what scripts and benchmarks write: the quick way
    [], ["--format", "csv"], ["--format", "csv", "-c", "ns"], ["-f", "json"],
    ["--format=csv,noheader", "--columns=ns4"], ["c1"], ["c", "d", "--fast"],
    ["--all-projects"], ["-c", "nsS", "web-"], ["status=running", "-f", "csv"],
]
UNUSUAL = [  # argparse's own: the hand parser leaves them (None) or agrees
    ["-cns"], ["--form", "csv"], ["-f"], ["-f", "-c"], ["c1", "-f", "csv", "c2"],
    ["--bogus"], ["-h"], ["--help"], ["--fast=1"], ["--", "c1"], ["-"],
]


def argparse_result(args: list[str]) -> dict[str, object] | str:
    try:
        return vars(parser("list").parse_args(args))
    except UsageError as exc:
        return f"error: {exc}"
    except SystemExit:
        return "help"


@pytest.mark.parametrize("args", COMMON + UNUSUAL, ids=lambda a: " ".join(a) or "(none)")
def test_quick_parse_agrees_with_argparse_or_leaves_it(
    args: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    quick = quick_parse(args)
    expected = argparse_result(args)
    capsys.readouterr()
    if quick is not None:
        assert quick == expected
    if args in COMMON:
        assert quick is not None


@pytest.mark.parametrize("row", [
    ["a", "b"], ["a,b", "c"], ['say "hi"', "x"], ["line\nbreak", ""], [""], ["", ""],
    ["a\rb"], [" lead", " "], ['"'], [","], [], ["10.0.0.2 (eth0)\n10.0.0.3 (eth1)"],
])
def test_csv_lines_are_the_csv_modules(row: list[str]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    assert csv_line(row) == out.getvalue()


def test_dates_as_incus_shows_them() -> None:
    assert date("2026-12-02T15:41:56.123456Z") == "2026/12/02 15:41 UTC"
    assert date("1970-01-01T00:00:00Z") == date("") == ""
    assert date("soon") == "soon"


def test_list_imports_no_argparse_typing_re_csv_or_datetime() -> None:
    assert heavy_imports(["list", "--format", "csv", "-c", "ns"],
                         tuple(m for m in HEAVY if m != "lxctl.cli.output")) == []

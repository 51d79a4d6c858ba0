"""``lxctl launch``/``init``: the hand parser reads what argparse would, or leaves it."""

from __future__ import annotations

import pytest
from cli_imports import heavy_imports

from lxctl.cli.args import UsageError
from lxctl.cli.commands.launch import parser, quick_parse

DEADLINE = 30

COMMON = [  # what scripts write: the quick way
    ["bb"], ["bb", "c1"], ["-q", "bb", "c1"], ["bb", "c1", "-q"], ["bb", "-q"],
    ["bb", "c1", "--storage", "pool"], ["--storage", "pool", "bb"], ["-s", "p1", "-s", "p2", "bb"],
    ["bb", "c1", "-c", "a=1", "--config", "b=2", "--config=c=3=4", "-c", "a=5"],
    ["bb", "-p", "default", "--profile", "web", "--profile=x"], ["bb", "--no-profiles"],
    ["bb", "c1", "-e", "--ephemeral", "--vm", "--quiet"], ["bb", "--description", "a b"],
    ["bb", "--description="], ["bb", "-t", "c2-m4"], ["--type=t1.micro", "bb", "c1"],
    ["local:bb", "local:c1"], ["", "c1"], ["bb", "c1", "--storage="],
]
UNUSUAL = [  # argparse's own cases: the hand parser leaves them (None) or agrees
    ["bb", "-q", "c1"], ["bb", "--type=t1.micro", "c1"], ["bb", "c1", "extra"], [], ["-q"],
    ["bb", "--stor", "p"],
    ["bb", "-qe"], ["bb", "-spool"], ["bb", "-s=pool"], ["bb", "-c", "-x"], ["bb", "--"],
    ["bb", "--", "c1"], ["bb", "-"], ["bb", "--quiet=1"], ["bb", "--bogus"], ["bb", "-s"],
    ["-c", "-1", "bb"], ["bb", "-h"], ["--help"],
]


def argparse_result(args: list[str]) -> dict[str, object] | str:
    try:
        return vars(parser("launch", True).parse_args(args))
    except UsageError as exc:
        return f"error: {exc}"
    except SystemExit:  # --help
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


def test_the_common_forms_take_the_quick_way() -> None:
    for args in COMMON:
        assert quick_parse(args) is not None, args


def test_launch_imports_no_argparse_typing_re_or_json() -> None:
    """A launch imports the connection and nothing heavy (argparse, re and typing cost
    ~25 ms a start); without a daemon it fails at the connection."""
    assert heavy_imports(["launch", "-q", "bb", "c1", "--storage", "p", "-c", "a=b"]) == []

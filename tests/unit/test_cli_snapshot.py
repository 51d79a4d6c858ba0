"""``lxctl snapshot create``: the hand parser reads what argparse would, or leaves it,
and a plain create imports nothing heavy."""

from __future__ import annotations

import pytest
from cli_imports import HEAVY, heavy_imports

from lxctl.cli.args import UsageError
from lxctl.cli.commands.snapshot import _parser, quick_create

COMMON = [  # the quick way
    ["create", "c1"], ["create", "c1", "s0"], ["create", "c1", "s0", "--reuse"],
    ["create", "c1", "--no-expiry"], ["create", "c1", "s0", "--no-expiry", "--reuse"],
    ["create", "c1", "--stateful"], ["create", "local:c1", "s0"],
]
UNUSUAL = [  # argparse's own: the hand parser leaves them (None) or agrees
    ["create"], ["create", "c1", "s0", "extra"], ["create", "--reuse", "c1"],
    ["create", "c1", "--reu"], ["create", "c1", "-h"], ["create", "c1", "--bogus"],
    ["create", "c1", "--", "s0"], ["create", "c1", "-"], ["delete", "c1", "s0"],
    ["list", "c1"], [], ["--help"], ["create", "c1", "--reuse=1"],
]
CREATE_KEYS = ("instance", "snapshot", "no_expiry", "reuse", "stateful")


def argparse_result(args: list[str]) -> dict[str, object] | str:
    try:
        opts = vars(_parser().parse_args(args))
    except UsageError as exc:
        return f"error: {exc}"
    except SystemExit:  # --help
        return "help"
    return {k: opts[k] for k in CREATE_KEYS} if opts["verb"] == "create" else opts


@pytest.mark.parametrize("args", COMMON + UNUSUAL, ids=lambda a: " ".join(a) or "(none)")
def test_quick_create_agrees_with_argparse_or_leaves_it(
    args: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    quick = quick_create(args)
    expected = argparse_result(args)
    capsys.readouterr()
    if quick is not None:
        assert quick == expected
    assert (quick is not None) == (args in COMMON)


def test_snapshot_create_imports_no_argparse_typing_or_re() -> None:
    assert heavy_imports(["snapshot", "create", "c1", "s0", "--reuse"]) == []


def test_volume_snapshot_create_takes_the_short_way_only_when_plain() -> None:
    from lxctl.cli.commands.storage import quick_volume_snapshot

    want = {"pool": "p", "name": "v", "action": "create", "snapshot": "s"}
    assert quick_volume_snapshot(["volume", "snapshot", "create", "p", "v", "s"]) == want
    assert quick_volume_snapshot(["volume", "snapshot", "create", "p", "custom/v", "s"]) == \
        want
    for args in (["volume", "snapshot", "create", "p", "v"],  # the parser's error
                 ["volume", "snapshot", "create", "p", "v", "-h"],
                 ["volume", "snapshot", "create", "p", "image/v", "s"],
                 ["volume", "snapshot", "delete", "p", "v", "s"],
                 ["volume", "snapshot", "create", "p", "v", "s", "x"], ["list"]):
        assert quick_volume_snapshot(args) is None, args


def test_volume_snapshot_create_imports_no_argparse_or_typing() -> None:
    assert heavy_imports(["storage", "volume", "snapshot", "create", "p", "v", "s"],
                         tuple(m for m in HEAVY if m != "lxctl.cli.output")) == []

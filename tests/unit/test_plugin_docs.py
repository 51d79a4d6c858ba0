"""contrib/docs/plugins.md is generated from the hookspecs and kept current; it
documents every hook, and every hook is implemented by a plugin the tests load."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from lxctl import hookspecs

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "contrib" / "docs" / "plugins.md"


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_plugins",
                                                  ROOT / "contrib" / "docs" / "gen_plugins.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plugin_page_is_current() -> None:
    rendered = _generator().render()  # type: ignore[attr-defined]
    assert PAGE.read_text() == rendered, (
        "contrib/docs/plugins.md is stale: python contrib/docs/gen_plugins.py > "
        "contrib/docs/plugins.md")


def test_every_hook_is_on_the_page_and_implemented_by_a_tested_plugin() -> None:
    page = PAGE.read_text()
    plugins = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "contrib").glob("*/lxctl_*.py")]
    implemented = "".join(p.read_text() for p in plugins)
    names = [n for n, f in vars(hookspecs).items()
             if n.startswith("lxctl_") and inspect.isfunction(f)]
    assert len(names) >= 5
    for name in names:
        assert f"### `{name}(" in page, name
        assert inspect.getdoc(getattr(hookspecs, name)), name
        assert f"def {name}(" in implemented, f"no tested plugin implements {name}"

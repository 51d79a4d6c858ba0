"""Meta-tests of the layout: who may import whom, every hook documented and exercised,
every RPC method registered from the one api module of its noun."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from lxctl import api, hookspecs

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_ROOTS = [ROOT / "plugins", ROOT / "contrib" / "example-plugin",
                ROOT / "contrib" / "lxctl-plugin-webhook"]


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute module names a file imports (relative imports resolved to its package)."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                continue  # relative: inside its own package
            out.append((node.module or "", node.lineno))
    return out


def _plugin_package(path: Path, plugins: Path) -> str:
    """``lxctl_plugins.<kind>.<name>`` for a file of a built-in plugin."""
    rel = path.relative_to(plugins).with_suffix("")
    parts = rel.parts[:2]
    return ".".join(("lxctl_plugins", *parts))


def _violations(path: Path, plugins: Path = ROOT / "plugins") -> list[str]:
    """``plugins``: the folder that installs as ``lxctl_plugins``."""
    found = []
    own = _plugin_package(path, plugins) if plugins in path.parents else None
    for module, line in _imports(path):
        where = f"{path.name}:{line} imports {module}"
        if (module.startswith("lxctl.") and module != "lxctl.public") or module == "lxctl":
            found.append(f"{where}: plugins import only lxctl.public")
        if module.startswith("lxctl_plugins") and (own is None or not (
                module == own or module.startswith(own + "."))):
            found.append(f"{where}: a plugin never imports another plugin")
    return found


def test_plugins_import_only_the_public_api_and_never_each_other() -> None:
    files = [f for root in PLUGIN_ROOTS for f in root.rglob("*.py")]
    assert len(files) >= 8
    assert [v for f in files for v in _violations(f)] == []


def test_the_rule_catches_what_it_must(tmp_path: Path) -> None:
    bad = tmp_path / "plugins" / "storage" / "probe.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from lxctl.objects import pools\nimport lxctl_plugins.hypervisor.lxc\n"
                   "from lxctl.public import impl\nfrom lxctl_plugins.storage import x\n"
                   "from lxctl_plugins.storage.probe import y\n")
    found = _violations(bad, plugins=tmp_path / "plugins")
    assert len(found) == 3, found
    assert "only lxctl.public" in found[0] and "another plugin" in found[1]


def test_the_core_never_imports_a_plugin() -> None:
    found = [f"{f.relative_to(ROOT)}:{line} imports {module}"
             for f in (ROOT / "core").rglob("*.py") for module, line in _imports(f)
             if module.startswith("lxctl_plugins")]
    assert found == []


def test_public_names_exist() -> None:
    from lxctl import public

    assert all(hasattr(public, name) for name in public.__all__)


def _hook_specs() -> list[object]:
    return [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
            if name.startswith("lxctl_")]


def test_every_hook_is_documented_and_exercised() -> None:
    """Each hookspec states its contract, the README shows it to plugin authors, and a
    plugin that tests load implements it."""
    readme = (ROOT / "README.md").read_text()
    implemented = "".join(p.read_text() for p in [
        *(ROOT / "tests").rglob("*.py"), *(ROOT / "contrib" / "example-plugin").rglob("*.py")])
    specs = _hook_specs()
    assert len(specs) >= 5
    for spec in specs:
        name = spec.__name__  # type: ignore[attr-defined]
        assert len(inspect.getdoc(spec) or "") > 80, name
        assert name in readme, f"{name} is not in the README"
        assert f"def {name}(" in implemented, f"no test plugin implements {name}"


def test_every_rpc_method_comes_from_the_api_module_of_its_noun() -> None:
    nouns: dict[str, str] = {}
    for module in api.MODULES:
        noun = module.NOUN
        assert noun not in nouns, f"{noun} registered by {nouns[noun]} and {module.__name__}"
        nouns[noun] = module.__name__
        assert module.METHODS, module.__name__
        for name, func in module.METHODS.items():
            assert name.startswith(noun + "."), f"{name} in {module.__name__}"
            assert func.__module__ == module.__name__, f"{name} is defined elsewhere"
            assert inspect.getdoc(func) is not None or name.count(".") == 1
    files = {p.stem for p in (ROOT / "core" / "api").glob("*.py")} - {"__init__", "context"}
    assert files == {m.__name__.rsplit(".", 1)[1] for m in api.MODULES}


@pytest.mark.parametrize("module", ["lxctl.cli.commands.exec", "lxctl.cli.commands.version"])
def test_client_hot_paths_import_no_daemon_code(module: str) -> None:
    import subprocess
    import sys

    code = (f"import sys; import {module}; bad = [m for m in sys.modules if m.split('.')[0] "
            "in ('trio', 'pluggy', 'structlog', 'jsonrpcserver', 'lxc') or "
            "m.startswith(('lxctl.kernel', 'lxctl.objects', 'lxctl.daemon'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert out.strip() == "[]"


def test_every_trio_test_runs_under_a_deadline(request: pytest.FixtureRequest) -> None:
    items = [i for i in request.session.items
             if inspect.iscoroutinefunction(getattr(i, "obj", None))]
    assert items, "no trio test was collected with this one"
    assert all(getattr(i.obj, "lxctl_deadline", None) for i in items)  # type: ignore[attr-defined]


async def test_the_deadline_fires() -> None:
    import trio
    from deadlines import _with_deadline

    async def hangs() -> None:
        await trio.sleep_forever()

    with pytest.raises(trio.TooSlowError):
        await _with_deadline(hangs, seconds=0.01)()


def test_the_daemon_and_its_plugins_load_without_pyroute2() -> None:
    """pyroute2 costs a daemon ~20 MB of RSS: it is imported on first use only
    (lxctl.netlink), never when the daemon and the built-in plugins load."""
    code = ("import sys, lxctl.daemon, lxctl_plugins.network.linux, "
            "lxctl_plugins.hypervisor.lxc, lxctl_plugins.storage.btrfs; "
            "print(sorted(m for m in sys.modules if m.startswith('pyroute2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"

"""Guards that keep the house standing: import contracts between the layers, providers
that never print, no provider named outside providers (and the plugin list), and
every hook and setting documented in the README (datasette-style meta-tests).

The import check is our own small equivalent of import-linter: it also sees imports
inside functions, relative imports, and modules named in strings (loaded by name at
run time with importlib). It is shown to fail on a broken tree below.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "finrpt_providers"
ROOT = "finrpt_providers"
# Layers (by module path under the package).
SURFACES = ("finrpt_providers.dataer", "finrpt_providers.compare", "finrpt_providers.yf", "finrpt_providers.report")
CLI = "finrpt_providers.cli"
TESTING = "finrpt_providers.testing"
PROVIDERS = "finrpt_providers.providers"
PLUGIN_LIST = "finrpt_providers.plugins"  # loads the built-in providers by name: the one allowed place
PUBLIC = "finrpt_providers"  # __init__: re-exports the core (and the finrpt surface, lazily)
# The bottom of the core: modules that import nothing of the package but each other.
BASE = ("errors", "redact", "timebase", "calendar", "query", "frames", "adjust", "intervals", "deadline",
        "hookspecs", "text", "compat")


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _typing_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks (annotations only: never run)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for inner in ast.walk(sub):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        out.add(id(inner))
    return out


def imports_of(path: Path, root: Path, runtime_only: bool = False) -> set[str]:
    """Every module ``path`` imports: top-level or in functions, relative resolved, and
    dotted package names written in strings (importlib.import_module, lazy tables).
    ``runtime_only`` leaves out imports made for type checkers only."""
    name = module_name(path, root)
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    top = root.name
    skip = _typing_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from . import x` may import module x
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(rf"{top}(\.\w+)+", node.value):
                out.add(node.value)
    return {m for m in out if m == top or m.startswith(top + ".")}


def layer(mod: str, top: str = ROOT) -> str:
    def under(prefix: str) -> bool:
        p = prefix.replace(ROOT, top, 1)
        return mod == p or mod.startswith(p + ".")

    if under(PROVIDERS):
        rest = mod.split(".")
        return "provider:" + rest[2] if len(rest) > 2 else "providers-package"
    if under(TESTING):
        return "testing"
    if mod == CLI.replace(ROOT, top, 1):
        return "cli"
    if any(mod == s.replace(ROOT, top, 1) for s in SURFACES):
        return "surface"
    if mod == top:
        return "public"
    return "core"


def violations(root: Path) -> list[str]:
    """Broken import contracts in the package at ``root``."""
    top = root.name
    found = []
    for path in sorted(root.rglob("*.py")):
        mod = module_name(path, root)
        mine = layer(mod, top)
        for target in sorted(imports_of(path, root)):
            theirs = layer(target, top)
            if theirs in ("core", "public") or target == mod:
                continue
            if theirs == "providers-package":
                continue
            why = None
            if mine == "core":
                if not (mod == PLUGIN_LIST.replace(ROOT, top, 1) and theirs.startswith("provider:")):
                    why = f"the core imports the {theirs.split(':')[0]} layer"
            elif mine == "public":
                if theirs != "surface":
                    why = f"the public package imports the {theirs.split(':')[0]} layer"
            elif mine.startswith("provider:"):
                if theirs != mine:
                    why = f"a provider imports {'another provider' if theirs.startswith('provider:') else theirs}"
            elif mine == "surface":
                if theirs not in ("surface",):
                    why = f"the finrpt surface imports the {theirs.split(':')[0]} layer"
            elif mine == "cli":
                if theirs.startswith("provider"):
                    why = "the CLI imports a provider (its commands come through register_commands)"
            elif mine == "testing":
                if theirs == "cli":
                    why = "testing imports the CLI (the CLI uses testing for --sandbox, not the reverse)"
            if why:
                found.append(f"{mod} -> {target}: {why}")
    return found


def test_import_contracts_hold():
    assert violations(PACKAGE) == []


def _existing_module(name: str, root: Path) -> str:
    """``a.b.c`` (maybe a name inside module ``a.b``) -> the module that exists."""
    parts = name.split(".")
    base = root.parent
    while parts and not ((base / Path(*parts)).with_suffix(".py").exists()
                         or (base / Path(*parts) / "__init__.py").exists()):
        parts.pop()
    return ".".join(parts)


def core_graph(root: Path) -> dict[str, set[str]]:
    """Core module -> the core modules it imports when it runs (in functions too)."""
    top = root.name
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        mod = module_name(path, root)
        if layer(mod, top) != "core":
            continue
        targets = {_existing_module(t, root) for t in imports_of(path, root, runtime_only=True)}
        graph[mod] = {t for t in targets if t and t != mod and layer(t, top) == "core"}
    return graph


def circles(root: Path) -> list[list[str]]:
    """Groups of core modules that import each other, directly or round a loop (Tarjan's
    strongly connected components of the runtime import graph)."""
    graph = core_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def base_violations(root: Path) -> list[str]:
    """Base modules importing anything of the package beyond the base."""
    top = root.name
    base = {f"{top}.{b}" for b in BASE}
    out = []
    for mod, targets in core_graph(root).items():
        if mod in base:
            out += [f"{mod} -> {t}" for t in sorted(targets - base)]
    return out


STORE = "store"  # the store package: the base, config and itself; no provider, no network source


def store_violations(root: Path) -> list[str]:
    """Store modules importing anything beyond the base, ``config`` and the store itself."""
    top = root.name
    allowed = {f"{top}.{b}" for b in (*BASE, "config")}
    out = []
    for mod, targets in core_graph(root).items():
        if mod == f"{top}.{STORE}" or mod.startswith(f"{top}.{STORE}."):
            out += [f"{mod} -> {t}" for t in sorted(targets) if t not in allowed
                    and not (t == f"{top}.{STORE}" or t.startswith(f"{top}.{STORE}."))]
    return out


def test_the_store_imports_only_the_base_and_config():
    assert store_violations(PACKAGE) == []


def test_the_store_check_fails_when_the_store_reaches_up(tmp_path):
    pkg = tmp_path / "finrpt_providers"
    (pkg / "store").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "chain.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "store" / "__init__.py").write_text("from ..errors import x\n")
    (pkg / "store" / "engine.py").write_text("def f():\n    from ..chain import y\n")
    assert store_violations(pkg) == ["finrpt_providers.store.engine -> finrpt_providers.chain"]


def test_no_circle_among_core_modules():
    assert circles(PACKAGE) == []


def test_the_base_imports_only_the_base():
    assert base_violations(PACKAGE) == []


def test_the_circle_check_fails_on_a_tree_with_a_core_circle(tmp_path):
    pkg = tmp_path / ROOT
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "chain.py").write_text("from . import pipeline\n")
    (pkg / "pipeline.py").write_text("def f():\n    from .market import g\n")  # inside a function: still a circle
    (pkg / "market.py").write_text("from .chain import x\n")
    (pkg / "frames.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .chain import x\n"
                                   "def f():\n    from .config import y\n")
    (pkg / "config.py").write_text("")
    assert circles(pkg) == [[f"{ROOT}.chain", f"{ROOT}.market", f"{ROOT}.pipeline"]]
    assert base_violations(pkg) == [f"{ROOT}.frames -> {ROOT}.config"]  # the typing-only import is no edge


def test_the_import_check_fails_when_a_contract_is_broken(tmp_path):
    pkg = tmp_path / ROOT
    (pkg / "providers" / "alpha").mkdir(parents=True)
    (pkg / "providers" / "beta").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "providers" / "__init__.py").write_text("")
    (pkg / "providers" / "alpha" / "__init__.py").write_text("from ..beta import thing\n")
    (pkg / "providers" / "beta" / "__init__.py").write_text("thing = 1\n")
    (pkg / "store.py").write_text("def f():\n    from .providers.alpha import x\n")
    (pkg / "chain.py").write_text("import importlib\nM = 'finrpt_providers.cli'\n")
    (pkg / "cli.py").write_text("def f():\n    from .providers.beta import thing\n")
    (pkg / "testing").mkdir()
    (pkg / "testing" / "__init__.py").write_text("")
    (pkg / "testing" / "demo.py").write_text("from ..cli import f\n")
    found = violations(pkg)
    assert any(v.startswith("finrpt_providers.cli -> finrpt_providers.providers.beta") for v in found)
    assert any(v.startswith("finrpt_providers.testing.demo -> finrpt_providers.cli") for v in found)
    assert any(v.startswith("finrpt_providers.providers.alpha -> finrpt_providers.providers.beta") for v in found)
    assert any(v.startswith("finrpt_providers.store -> finrpt_providers.providers.alpha") for v in found)
    assert any(v.startswith("finrpt_providers.chain -> finrpt_providers.cli") for v in found)


def _code_strings_and_names(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants (docstrings excluded) and identifiers of a module."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
    return out


def test_no_provider_is_named_in_the_core_or_the_cli():
    from finrpt_providers.plugins import DEFAULT_PLUGINS, registry

    names = sorted(registry())
    pattern = re.compile("|".join(["massive", "polygon", "yahoo", *map(re.escape, names)]), re.IGNORECASE)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = module_name(path, PACKAGE)
        if layer(mod) not in ("core", "public", "cli"):
            continue
        for line, text in _code_strings_and_names(ast.parse(path.read_text())):
            if pattern.search(text) and not (mod == PLUGIN_LIST and text in DEFAULT_PLUGINS):
                found.append(f"{mod}:{line}: {text[:80]!r}")
    assert found == []


def test_providers_never_print():
    found = []
    for path in sorted((PACKAGE / "providers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{path.name}:{node.lineno}: print()")
            if isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr") \
                    and isinstance(node.value, ast.Name) and node.value.id == "sys":
                found.append(f"{path.name}:{node.lineno}: sys.{node.attr}")
    assert found == []


README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_hook_is_documented_with_its_signature():
    from finrpt_providers import hookspecs

    text = README.read_text()
    hooks = [f for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(f, "finrpt_providers_spec")]
    assert {h.__name__ for h in hooks} == {"register_price_providers", "register_commands"}
    for h in hooks:
        params = ", ".join(inspect.signature(h).parameters)
        assert f"{h.__name__}({params})" in text, f"hook {h.__name__}({params}) is not in the README"


def test_every_setting_is_documented():
    """The core's and the built-in providers' settings (a third-party plugin found on the path,
    such as the example when its tests ran first, documents its own)."""
    from finrpt_providers.config import CORE_SETTINGS
    from finrpt_providers.plugins import DEFAULT_PLUGINS, registry

    ours = list(CORE_SETTINGS) + [s for e in registry().values() if e.plugin in DEFAULT_PLUGINS
                                  for s in e.provider.settings]
    text = README.read_text()
    missing = [f"{s.name} ([{s.section}] {s.key})" for s in ours
               if f"`{s.name}`" not in text or f"`[{s.section}] {s.key}`" not in text]
    assert missing == [], "settings missing from the README's settings table"


@pytest.mark.parametrize("capability", ["serves_actions", "serves_statements", "settings", "fetch_sessions",
                                        "fetch_actions", "fetch_statements", "native_adjustments", "earliest",
                                        "serves_info", "fetch_info", "fetch_basket", "serves_stream",
                                        "open_stream", "keeps_store", "store", "table_to_long"])
def test_every_provider_capability_is_documented(capability):
    from finrpt_providers import PriceProvider

    assert hasattr(PriceProvider, capability)
    assert re.search(rf"`{capability}[`(]", README.read_text()), f"{capability} is not in the README"

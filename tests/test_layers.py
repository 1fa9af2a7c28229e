"""Imports go downward only, as docs/architecture.md draws the layers.

Every import in ember_compiler/ and cli/ is read from the source (module level and inside functions,
``importlib.import_module("...")`` with a literal name too; ``if TYPE_CHECKING:`` blocks are not
imports at run time), and each must go to the same layer or a lower one. Heavy optional libraries
imported lazily (ray, matplotlib, xllamacpp) are third-party and not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# lowest first; a module belongs to the longest prefix listed
LAYERS: list[tuple[str, ...]] = [
    ("ember_compiler.errors", "ember_compiler.templates", "ember_compiler.answers", "ember_compiler.data"),
    ("ember_compiler.spec",),
    ("ember_compiler.providers",),
    ("ember_compiler.ops",),
    ("ember_compiler.xcs",),
    ("ember_compiler.runtime",),
    ("ember_compiler.compiler",),
    ("ember_compiler.runs",),
    ("ember_compiler.sdk",),
    ("ember_compiler.eval",),
    ("ember_compiler.report",),  # reads run folders (runs, xcs, eval's summary helpers) into a page
    ("ember_compiler.api", "ember_compiler"),  # the package itself re-exports the API
    ("ember_compiler.testing",),  # fakes for tests: nothing in the library imports them
    ("ember_cli",),
]
# (importer, imported): re-exports for users, not dependencies (each says why where it is written)
ALLOWED = {
    ("ember_compiler.ops", "ember_compiler.sdk.ops"),  # ops.Ensemble(...): the SDK facade, see ops/__init__.py
}
CLI_MAY_IMPORT = ("ember_compiler.api", "ember_compiler.errors")


def layer(module: str) -> int | None:
    best, found = -1, None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, found = len(p), i
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "cli":
        parts[0] = "ember_cli"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` bodies
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names if _is_module(f"{mod}.{a.name}")]
            found += [(m, node.lineno) for m in subs] if len(subs) == len(node.names) else [(mod, node.lineno)]
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            found.append((node.args[0].value, node.lineno))
    return [(m, line) for m, line in found if m.startswith(("ember_compiler", "ember_cli"))]


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.replace("ember_cli", "cli", 1).split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def sources() -> list[Path]:
    return sorted([*ROOT.joinpath("ember_compiler").rglob("*.py"), *ROOT.joinpath("cli").rglob("*.py")])


def test_every_module_has_a_layer():
    assert [module_name(p) for p in sources() if layer(module_name(p)) is None] == []


def test_imports_go_downward_only():
    upward = []
    for path in sources():
        me = module_name(path)
        for target, line in imports(path):
            if layer(target) > layer(me) and not any(me == a and target.startswith(b) for a, b in ALLOWED):
                upward.append(f"{path.relative_to(ROOT)}:{line}: {me} (layer {layer(me)}) imports {target} "
                              f"(layer {layer(target)})")
    assert upward == [], "imports against the layers of docs/architecture.md:\n" + "\n".join(upward)


def test_the_cli_uses_only_the_public_api():
    private = []
    for path in sorted(ROOT.joinpath("cli").rglob("*.py")):
        for target, line in imports(path):
            if target.startswith("ember_compiler") and not target.startswith(CLI_MAY_IMPORT):
                private.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert private == [], "cli/ imports only ember_compiler.api:\n" + "\n".join(private)


def test_the_layer_test_sees_an_upward_import(tmp_path):
    # the checker itself: a function-level import going up is caught like a module-level one
    src = ROOT / "ember_compiler" / "xcs" / "_probe_for_test.py"
    src.write_text("def f():\n    from ember_compiler.sdk import jit\n")
    try:
        assert ("ember_compiler.sdk.jit", 2) in imports(src) and layer("ember_compiler.sdk") > layer("ember_compiler.xcs")
    finally:
        src.unlink()


def test_every_package_is_shipped():
    """A package missing from pyproject's list is absent from the wheel (an editable install hides it)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ember_compiler").rglob("__init__.py")}
    assert on_disk | {"ember_cli"} <= listed, sorted(on_disk - listed)

"""Compile cases: the small specs in `tests/cases/compile/` lowered and compiled, for golden tests.

`lower_case("nested")` loads `tests/cases/compile/nested.yaml` and lowers it; `compile_case` also runs the
default passes (what `compile_spec` does). The folder is relative to the working directory (node sources
keep the relative path given, which the goldens show): run from the repository root (the tests'
`at_repo_root` fixture), or pass `cases=` explicitly.
"""

from __future__ import annotations

from pathlib import Path

from ember_compiler.compiler.lower import lower
from ember_compiler.compiler.passes import run_passes
from ember_compiler.ops.registry import Spec
from ember_compiler.spec.loader import load_document
from ember_compiler.xcs.plan import Plan

CASES = "tests/cases/compile"


def double_load_spec(path, sets=None):
    """Stand-in for ``check.load_spec`` until it exists: load, then validate the model only."""
    doc = load_document(path)
    return doc, Spec.model_validate(doc.data)


def spec_loader():
    """The checker's ``load_spec`` once it exists, else the double."""
    try:
        from ember_compiler.compiler.check import load_spec
    except ImportError:
        return double_load_spec
    return load_spec


def lower_case(name: str, cases: str | Path = CASES) -> Plan:
    """Load and lower `<cases>/<name>.yaml` (no passes)."""
    load = spec_loader()
    return lower(*load(f"{cases}/{name}.yaml"), load_spec=load)


def compile_case(name: str, cases: str | Path = CASES) -> Plan:
    """What ``compile_spec`` does: load, lower, run the default passes."""
    return run_passes(lower_case(name, cases))

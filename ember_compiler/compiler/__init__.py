"""The compiler: spec file -> validated spec -> plan -> passes (DESIGN §1).

``compile_spec`` (in ``compile.py``) is loaded on first access, so that importing one part of the
compiler (the passes, for a run that only executes a plan) does not load the checker and every
provider with it.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"compile_spec": "compile", "lower": "lower", "run_passes": "passes"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"ember_compiler.compiler.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ember_compiler.compiler' has no attribute {name!r}")

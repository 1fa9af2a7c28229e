"""The op library: one file per op (``generate.py``, ``ensemble.py``, …), each defining ``OP``, an
``OpDef`` (``base.py``); ``registry.py`` lists them. Shared helpers: ``calls.py`` (requests and
replies of the llm ops), ``prompts.py`` (default prompts), ``text.py`` (answers and verdicts),
``operators.py`` (finding a python node's operator).

NOTE: [SDK facade] ``from ember_compiler import ops`` names this package, and users write
``ops.Ensemble(...)``: the SDK's op classes (generated in ``ember_compiler.sdk.ops`` from the
registry) are served here on first access. Nothing in Ember imports them through this package, so
it is a re-export for users, not a dependency of the op layer on the SDK (the layering test allows
exactly this one).
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "BuiltinOp" or (name[:1].isupper() and not name.startswith("_")):
        classes = importlib.import_module("ember_compiler.sdk.ops")
        if hasattr(classes, name):
            return getattr(classes, name)
    raise AttributeError(f"module 'ember_compiler.ops' has no attribute {name!r}")


def __dir__() -> list[str]:
    from .registry import OPS

    return sorted([*globals(), "BuiltinOp", *(op.sdk.name for op in OPS.values() if op.sdk is not None)])

"""Ember: design, compile and run Networks of Networks (compound LLM systems).

The library API (``ember_compiler.api``: ``validate``, ``compile``, ``run``/``arun``,
``evaluate``/``aevaluate``, ``estimate``, ``sweep``, ``RunOptions``, ``Budget``) and the Python SDK's
names (``Operator``, ``ops``, ``jit``, ``vmap``, ``load``) are importable from here. They are loaded
on first access, so ``import ember_compiler`` stays light.
"""

from __future__ import annotations

from typing import Any

_SDK = (
    "BatchOutput", "Batched", "Jitted", "Model", "Network", "NotTraceable", "Operator", "OperatorError",
    "RunOutput", "Session", "SpecOperator", "TreeDef", "jit", "load", "ops", "register_pytree_node", "session",
    "tree_flatten", "tree_leaves", "tree_leaves_with_path", "tree_map", "tree_structure", "tree_unflatten",
    "vmap", "when",
)

_API = (
    "Budget", "BudgetExceeded", "EmberError", "Limits", "RunOptions", "RunResult", "SpecInvalid", "Usage", "UsageError", "aevaluate",
    "arun", "compile", "estimate", "evaluate", "run", "sweep", "validate",
)

__all__ = [*_API, *_SDK]


def __getattr__(name: str) -> Any:
    if name == "ops":  # the op package (it serves the SDK's op classes: ops.Ensemble, ops.Vote, ...)
        import importlib

        return importlib.import_module("ember_compiler.ops")
    if name in _API:
        import importlib

        api = importlib.import_module("ember_compiler.api")
        value = getattr(api, name) if name != "RunResult" else importlib.import_module("ember_compiler.runs.run").RunResult
        globals()[name] = value
        return value
    if name in _SDK:
        from ember_compiler import sdk

        value = getattr(sdk, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ember_compiler' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, *_SDK])

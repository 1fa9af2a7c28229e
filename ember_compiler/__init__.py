"""Ember: design, compile and run Networks of Networks (compound LLM systems).

The Python SDK's public names are importable from here: ``from ember_compiler import Operator, ops,
jit, vmap, load``. They are loaded on first access, so ``import ember_compiler`` (and the ``ember``
command, which never needs them to validate a spec) stays light.
"""

from __future__ import annotations

from typing import Any

_SDK = (
    "BatchOutput", "Batched", "Jitted", "Model", "Network", "NotTraceable", "Operator", "OperatorError",
    "RunOutput", "Session", "SpecOperator", "TreeDef", "jit", "load", "ops", "register_pytree_node", "session",
    "tree_flatten", "tree_leaves", "tree_leaves_with_path", "tree_map", "tree_structure", "tree_unflatten",
    "vmap", "when",
)

__all__ = list(_SDK)


def __getattr__(name: str) -> Any:
    if name == "ops":  # the op package (it serves the SDK's op classes: ops.Ensemble, ops.Vote, ...)
        import importlib

        return importlib.import_module("ember_compiler.ops")
    if name in _SDK:
        from ember_compiler import sdk

        value = getattr(sdk, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ember_compiler' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SDK])

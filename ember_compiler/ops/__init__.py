"""The op library: the catalogue (`catalog`), runtime rules (`llm`, `fns`, `text`, `prompts`).

`from ember_compiler import ops` names this package, so it also serves the SDK's built-in op classes
(`ops.Ensemble(...)`, `ops.Vote()`, …, defined in `ember_compiler.sdk.ops`), loaded on first access:
the runtime modules here never import the SDK.
"""

from __future__ import annotations

from typing import Any

_SDK_OPS = ("BuiltinOp", "Ensemble", "First", "Generate", "Judge", "Refine", "Select", "Verify", "Vote")


def __getattr__(name: str) -> Any:
    if name in _SDK_OPS:
        from ember_compiler.sdk import ops as sdk_ops

        return getattr(sdk_ops, name)
    raise AttributeError(f"module 'ember_compiler.ops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SDK_OPS])

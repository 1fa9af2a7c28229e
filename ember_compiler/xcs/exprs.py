"""Compile plan expressions (see `plan.py`) into closures, once per plan, so rows pay no parsing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import templates

SKIPPED: Any = type("Skipped", (), {"__repr__": lambda self: "SKIPPED"})()

Env = dict[str, Any]  # node id -> output ports (or SKIPPED)
Resolver = Callable[[Env, dict[str, Any]], Any]  # (results, network inputs) -> value


class Skip(Exception):
    """Raised while resolving a value that depends on a skipped node."""


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def compile_expr(expr: Any, tolerant: bool = False) -> Resolver:
    """A resolver for `expr`. A reference to a skipped node raises `Skip`, or gives None if `tolerant`."""
    if not isinstance(expr, dict):
        raise ValueError(f"not a plan expression: {expr!r}")
    if "$lit" in expr:
        value = expr["$lit"]
        return lambda env, inputs: value
    if "$in" in expr:
        name = expr["$in"]
        return lambda env, inputs: inputs.get(name)
    if "$ref" in expr or "$node" in expr:
        node, port = expr["$ref"] if "$ref" in expr else (expr["$node"], None)

        def get(env: Env, inputs: dict[str, Any]) -> Any:
            out = env[node]
            if out is SKIPPED:
                if tolerant:
                    return None
                raise Skip(node)
            return out if port is None else out.get(port)

        return get
    if "$list" in expr:
        items = [compile_expr(e, tolerant) for e in expr["$list"]]
        return lambda env, inputs: [f(env, inputs) for f in items]
    if "$dict" in expr:
        fields = [(k, compile_expr(e, tolerant)) for k, e in expr["$dict"].items()]
        return lambda env, inputs: {k: f(env, inputs) for k, f in fields}
    if "$fmt" in expr:
        parts = [p if isinstance(p, str) else compile_expr(p, tolerant) for p in expr["$fmt"]]
        return lambda env, inputs: "".join(p if isinstance(p, str) else _text(p(env, inputs)) for p in parts)
    if "$expr" in expr:
        source = expr["$expr"]
        variables = [(k, compile_expr(e, tolerant)) for k, e in expr["vars"].items()]
        return lambda env, inputs: templates.evaluate(source, {k: f(env, inputs) for k, f in variables})
    raise ValueError(f"unknown plan expression tag in {expr!r}")

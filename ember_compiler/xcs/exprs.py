"""Compile plan expressions (see `expr.py`) into closures, once per plan, so rows pay no parsing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import templates
from .expr import DictOf, Expr, Fmt, Guard, Input, ListOf, Lit, NodeRef, Ref

SKIPPED: Any = type("Skipped", (), {"__repr__": lambda self: "SKIPPED"})()

Env = dict[str, Any]  # node id -> output ports (or SKIPPED)
Resolver = Callable[[Env, dict[str, Any]], Any]  # (results, network inputs) -> value


class Skip(Exception):
    """Raised while resolving a value that depends on a skipped node."""


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def compile_expr(expr: Expr, tolerant: bool = False) -> Resolver:
    """A resolver for `expr`. A reference to a skipped node raises `Skip`, or gives None if `tolerant`."""
    if isinstance(expr, Lit):
        value = expr.value
        return lambda env, inputs: value
    if isinstance(expr, Input):
        name = expr.name
        return lambda env, inputs: inputs.get(name)
    if isinstance(expr, Ref | NodeRef):
        node, port = (expr.node, expr.port) if isinstance(expr, Ref) else (expr.node, None)

        def get(env: Env, inputs: dict[str, Any]) -> Any:
            out = env[node]
            if out is SKIPPED:
                if tolerant:
                    return None
                raise Skip(node)
            return out if port is None else out.get(port)

        return get
    if isinstance(expr, ListOf):
        items = [compile_expr(e, tolerant) for e in expr.items]
        return lambda env, inputs: [f(env, inputs) for f in items]
    if isinstance(expr, DictOf):
        fields = [(k, compile_expr(e, tolerant)) for k, e in expr.entries]
        return lambda env, inputs: {k: f(env, inputs) for k, f in fields}
    if isinstance(expr, Fmt):
        parts = [p if isinstance(p, str) else compile_expr(p, tolerant) for p in expr.parts]
        return lambda env, inputs: "".join(p if isinstance(p, str) else _text(p(env, inputs)) for p in parts)
    if isinstance(expr, Guard):
        source = expr.source
        variables = [(k, compile_expr(e, tolerant)) for k, e in expr.vars]
        return lambda env, inputs: templates.evaluate(source, {k: f(env, inputs) for k, f in variables})
    raise ValueError(f"not a plan expression: {expr!r}")

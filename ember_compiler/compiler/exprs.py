"""Spec values to plan expressions (see ``ember_compiler.xcs.expr`` for the classes).

Contract (the runtime relies on it):

- a whole reference ``${inputs.q}`` is the input's expression in the current scope (``{"$in": "q"}``
  at the top level, the expression bound by the network node's ``with:`` inside a sub-network);
  ``${node.port}`` is ``{"$ref": [PREFIX + node, port]}``; ``${params.x}`` is ``{"$lit": value}``;
- a string with embedded references is ``{"$fmt": [...]}``, lists ``$list``, mappings ``$dict``,
  other scalars ``$lit``;
- template variables become one ``{"$dict": {...}}`` holding only the names the templates read;
- a ``when:`` is one value expression (a whole reference) or ``{"$expr": SRC, "vars": {...}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ember_compiler.errors import EmberError
from ember_compiler.spec.refs import Reference, split_interpolated, whole_reference
from ember_compiler.templates import expression_variables
from ember_compiler.xcs.expr import DictOf, Expr, Fmt, Guard, Input, ListOf, Lit, NodeRef, Ref, rebuild
from ember_compiler.xcs.plan import PlanNode

ITEM = "#item"  # the input name of a map item inside its sub-plan (no spec name has a '#')


@dataclass(frozen=True)
class Scope:
    """One spec level being lowered: the top spec, or a sub-spec inlined under ``prefix``."""

    prefix: str  # "" at the top, "net/" (or "a/b/") inside networks
    inputs: dict[str, Any]  # input name -> expression
    params: dict[str, Any]  # static values, `--set` already applied
    models: dict[str, str]  # binding name in the spec -> binding name in the plan
    nodes: frozenset[str]  # node ids of this spec level (template variables may name them)
    guards: tuple[Any, ...] = ()  # guards of enclosing network nodes

    def node_id(self, local: str) -> str:
        return self.prefix + local


def plain(value: Any) -> Any:
    """``value`` as plain JSON types (loaders may hand us str/int/float subclasses)."""
    if type(value).__name__ == "ScalarBoolean":  # ruamel's anchored bool is an int subclass
        return bool(value)
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def resolve(reference: Reference, scope: Scope) -> Expr:
    """The expression a reference stands for in ``scope``."""
    if reference.head == "inputs":
        if reference.tail not in scope.inputs:
            raise EmberError(f"unknown input in {reference.text}")
        return scope.inputs[reference.tail]
    if reference.head == "params":
        if reference.tail not in scope.params:
            raise EmberError(f"unknown param in {reference.text}")
        return Lit(plain(scope.params[reference.tail]))
    return Ref(scope.node_id(reference.head), reference.tail)


def lower_value(value: Any, scope: Scope) -> Expr:
    """A spec value (field, list item, mapping value) as an expression."""
    if isinstance(value, str):
        whole = whole_reference(value)
        if whole is not None:
            return resolve(whole, scope)
        parts = split_interpolated(value)
        if any(isinstance(p, Reference) for p in parts):
            return Fmt(tuple(str(p) if isinstance(p, str) else resolve(p, scope) for p in parts))
        return Lit(str(value))
    if isinstance(value, list | tuple):
        return ListOf(tuple(lower_value(v, scope) for v in value))
    if isinstance(value, dict):
        return DictOf(tuple((str(k), lower_value(v, scope)) for k, v in value.items()))
    return Lit(plain(value))


def static(value: Any, scope: Scope) -> Any:
    """A field that must be known at compile time (``n``, ``max_rounds``, model fields)."""
    whole = whole_reference(value)
    if whole is not None and whole.head == "params":
        return plain(resolve(whole, scope).value)
    if whole is not None:
        raise EmberError(f"{whole.text} must be static (a literal or ${{params.NAME}})")
    return plain(value)


def variables_map(names: Iterable[str], scope: Scope) -> dict[str, Expr]:
    """Template/expression variables -> expressions; names that are neither inputs, params nor
    nodes (Jinja globals such as ``range``, loop variables) are left to the template engine."""
    found: dict[str, Expr] = {}
    for name in sorted(set(names)):
        if name == "inputs":
            found[name] = DictOf(tuple(scope.inputs.items()))
        elif name == "params":
            found[name] = Lit(plain(scope.params))
        elif name in scope.nodes:
            found[name] = NodeRef(scope.node_id(name))
    return found


def lower_when(when: Any, scope: Scope) -> tuple[Any, ...]:
    """A node's own guard (not its enclosing networks'), as a tuple of 0 or 1 expressions."""
    if when is None:
        return ()
    if not isinstance(when, str):  # e.g. `when: true`; truthiness of the literal
        return (lower_value(when, scope),)
    whole = whole_reference(when)
    if whole is not None:
        return (resolve(whole, scope),)
    source = str(when).strip()
    return (Guard(source, tuple(variables_map(expression_variables(source), scope).items())),)


def static_tree(value: Any, scope: Scope) -> Any:
    """``static`` applied through lists and mappings (a python node's ``init:``)."""
    if isinstance(value, dict):
        return {str(k): static_tree(v, scope) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [static_tree(v, scope) for v in value]
    return static(value, scope)


def capture_free(nodes: list[PlanNode], result: Expr, keep: str) -> tuple[list[PlanNode], Expr, dict[str, Expr]]:
    """Close a sub-plan over the values it reads from outside.

    Every ``Input`` other than ``keep`` and every reference to a node outside ``nodes`` becomes
    ``Input("#K")`` (K counts distinct captured expressions in order of appearance); returns the
    rewritten nodes (without sources: the enclosing node's source names them), the rewritten result
    and ``{"#K": outer expression}``.
    """
    local = {n.id for n in nodes}
    bind: dict[str, Expr] = {}
    keys: dict[Expr, str] = {}

    def free(e: Expr) -> Expr | None:
        if isinstance(e, Input) and e.name == keep:
            return e
        if isinstance(e, Ref | NodeRef) and e.node in local:
            return e
        if not isinstance(e, Input | Ref | NodeRef):
            return None  # descend
        if e not in keys:
            keys[e] = f"#{len(keys)}"
            bind[keys[e]] = e
        return Input(keys[e])

    out = [n.replace(inputs={k: rebuild(v, free) for k, v in n.inputs.items()},
                     when=tuple(rebuild(g, free) for g in n.when), source=None) for n in nodes]
    return out, rebuild(result, free), bind

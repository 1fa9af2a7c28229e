"""Plan expressions: the values flowing into a node, as frozen classes with one JSON form each.

=============  =====================================  ===============================================
class          JSON                                   value
=============  =====================================  ===============================================
``Input``      ``{"$in": NAME}``                      a network input (``#item``/``#K`` in a sub-plan)
``Ref``        ``{"$ref": [NODE, PORT]}``             one output port of an upstream node
``NodeRef``    ``{"$node": NODE}``                    all output ports of a node, as a mapping
``ListOf``     ``{"$list": [E, ...]}``                a list of expressions
``DictOf``     ``{"$dict": {K: E, ...}}``             a mapping of expressions
``Fmt``        ``{"$fmt": [str | E, ...]}``           text interpolation: parts joined as strings
``Guard``      ``{"$expr": SRC, "vars": {K: E}}``     a sandboxed Jinja expression (``when`` guards)
``Lit``        ``{"$lit": VALUE}``                    a literal JSON value
=============  =====================================  ===============================================

A spec's ``${params.NAME}`` is static: the compiler lowers it to the ``Lit`` of its value.
``walk`` visits every sub-expression, ``rebuild`` maps one bottom-up; nothing else in Ember looks
at the tags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


class Expr:
    """Base of the expression classes (all frozen and hashable by value)."""

    __slots__ = ()

    def children(self) -> tuple[Expr, ...]:
        return ()

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return self

    def to_json(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Input(Expr):
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"$in": self.name}


@dataclass(frozen=True, slots=True)
class Ref(Expr):
    node: str
    port: str

    def to_json(self) -> dict[str, Any]:
        return {"$ref": [self.node, self.port]}


@dataclass(frozen=True, slots=True)
class NodeRef(Expr):
    node: str

    def to_json(self) -> dict[str, Any]:
        return {"$node": self.node}


@dataclass(frozen=True, slots=True)
class Lit(Expr):
    value: Any

    def __hash__(self) -> int:  # literals may be lists or dicts
        return hash(repr(self.value))

    def to_json(self) -> dict[str, Any]:
        return {"$lit": self.value}


@dataclass(frozen=True, slots=True)
class ListOf(Expr):
    items: tuple[Expr, ...]

    def children(self) -> tuple[Expr, ...]:
        return self.items

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return ListOf(children)

    def to_json(self) -> dict[str, Any]:
        return {"$list": [e.to_json() for e in self.items]}


@dataclass(frozen=True, slots=True)
class DictOf(Expr):
    entries: tuple[tuple[str, Expr], ...]  # in order

    def children(self) -> tuple[Expr, ...]:
        return tuple(e for _, e in self.entries)

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return DictOf(tuple((k, e) for (k, _), e in zip(self.entries, children, strict=True)))

    def get(self, key: str) -> Expr | None:
        return next((e for k, e in self.entries if k == key), None)

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {"$dict": {k: e.to_json() for k, e in self.entries}}


@dataclass(frozen=True, slots=True)
class Fmt(Expr):
    parts: tuple[str | Expr, ...]

    def children(self) -> tuple[Expr, ...]:
        return tuple(p for p in self.parts if isinstance(p, Expr))

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        it = iter(children)
        return Fmt(tuple(p if isinstance(p, str) else next(it) for p in self.parts))

    def to_json(self) -> dict[str, Any]:
        return {"$fmt": [p if isinstance(p, str) else p.to_json() for p in self.parts]}


@dataclass(frozen=True, slots=True)
class Guard(Expr):
    source: str
    vars: tuple[tuple[str, Expr], ...]

    def children(self) -> tuple[Expr, ...]:
        return tuple(e for _, e in self.vars)

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return Guard(self.source, tuple((k, e) for (k, _), e in zip(self.vars, children, strict=True)))

    def to_json(self) -> dict[str, Any]:
        return {"$expr": self.source, "vars": {k: e.to_json() for k, e in self.vars}}


class ExprError(ValueError):
    """Not a plan expression (a malformed plan file, or a bug in a pass)."""


def from_json(data: Any) -> Expr:
    """The expression a JSON value stands for (an ``Expr`` is returned as it is)."""
    if isinstance(data, Expr):
        return data
    if not isinstance(data, dict) or len(data) not in (1, 2):
        raise ExprError(f"not a plan expression: {data!r}")
    try:
        if "$in" in data:
            return Input(str(data["$in"]))
        if "$ref" in data:
            node, port = data["$ref"]
            return Ref(str(node), str(port))
        if "$node" in data:
            return NodeRef(str(data["$node"]))
        if "$lit" in data:
            return Lit(data["$lit"])
        if "$list" in data:
            return ListOf(tuple(from_json(e) for e in data["$list"]))
        if "$dict" in data:
            return DictOf(tuple((str(k), from_json(e)) for k, e in data["$dict"].items()))
        if "$fmt" in data:
            return Fmt(tuple(p if isinstance(p, str) else from_json(p) for p in data["$fmt"]))
        if "$expr" in data:
            return Guard(str(data["$expr"]), tuple((str(k), from_json(e)) for k, e in data["vars"].items()))
    except ExprError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ExprError(f"malformed plan expression {data!r}: {exc}") from None
    raise ExprError(f"unknown plan expression tag in {data!r}")


def walk(expr: Expr) -> Iterator[Expr]:
    """Every sub-expression of ``expr``, outermost first."""
    yield expr
    for child in expr.children():
        yield from walk(child)


def rebuild(expr: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """``expr`` with each sub-expression replaced by ``fn(sub)`` when that is not None (outermost
    first: a replaced sub-expression is not descended into)."""
    new = fn(expr)
    if new is not None:
        return new
    kids = expr.children()
    if not kids:
        return expr
    rebuilt = tuple(rebuild(k, fn) for k in kids)
    return expr if rebuilt == kids else expr.with_children(rebuilt)


def deps(expr: Expr) -> set[str]:
    """Ids of the nodes ``expr`` reads."""
    return {e.node for e in walk(expr) if isinstance(e, Ref | NodeRef)}


def reads(expr: Expr, node: str) -> list[Ref | NodeRef]:
    """The references to ``node`` inside ``expr``."""
    return [e for e in walk(expr) if isinstance(e, Ref | NodeRef) and e.node == node]


def lit(value: Any) -> Lit:
    return Lit(value)


def ref(node: str, port: str) -> Ref:
    return Ref(node, port)


def list_of(items: Any) -> ListOf:
    return ListOf(tuple(items))


def dict_of(entries: dict[str, Expr]) -> DictOf:
    return DictOf(tuple(entries.items()))

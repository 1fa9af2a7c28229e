"""Pytrees: nested containers flattened into leaves and rebuilt (after ``jax.tree_util``).

Nodes are ``list``, ``tuple``, ``dict`` (keys sorted) and operators: a ``Network``'s children are its
public attributes (the operators it built, its settings — like a torch module's submodules), rebuilt
without calling ``__init__``; any other operator's children are its constructor arguments as given
(its static configuration, its ``init:`` in a spec), rebuilt by calling the constructor. Everything
else is a leaf: ``Model`` bindings, strings, numbers, None. Register other classes with
``register_pytree_node``.

    >>> net = SelfConsistency(model=Model(provider="sim"), n=5)
    >>> cheap = tree_map(lambda x: x.replace(accuracy=0.5) if isinstance(x, Model) else x, net)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Flatten = Callable[[Any], tuple[Iterable[Any], Any]]  # node -> (children, aux data)
Unflatten = Callable[[Any, list[Any]], Any]  # (aux data, children) -> node

_REGISTRY: dict[type, tuple[Flatten, Unflatten]] = {}


def register_pytree_node(cls: type, flatten: Flatten, unflatten: Unflatten) -> None:
    """Make instances of ``cls`` (and subclasses) pytree nodes."""
    _REGISTRY[cls] = (flatten, unflatten)


def _rule(value: Any) -> tuple[Flatten, Unflatten] | None:
    for cls in type(value).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    return None


@dataclass(frozen=True)
class TreeDef:
    """The structure of a pytree without its leaves. ``None`` kind marks a leaf."""

    kind: type | None
    aux: Any
    children: tuple[TreeDef, ...]

    @property
    def num_leaves(self) -> int:
        return 1 if self.kind is None else sum(c.num_leaves for c in self.children)

    def __repr__(self) -> str:
        if self.kind is None:
            return "*"
        inner = ", ".join(repr(c) for c in self.children)
        return f"{self.kind.__name__}({inner})"


_LEAF = TreeDef(None, None, ())


def tree_flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """The leaves of ``tree`` (depth first, left to right) and its structure."""
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list[Any]) -> TreeDef:
    rule = _rule(tree)
    if rule is None:
        leaves.append(tree)
        return _LEAF
    children, aux = rule[0](tree)
    return TreeDef(type(tree), aux, tuple(_flatten(c, leaves) for c in children))


def tree_unflatten(treedef: TreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a pytree of structure ``treedef`` from ``leaves``."""
    items = list(leaves)
    if len(items) != treedef.num_leaves:
        raise ValueError(f"tree_unflatten: the structure has {treedef.num_leaves} leaves, got {len(items)}")
    it = iter(items)
    return _build(treedef, it)


def _build(treedef: TreeDef, leaves: Any) -> Any:
    if treedef.kind is None:
        return next(leaves)
    children = [_build(c, leaves) for c in treedef.children]
    return _rule_for(treedef.kind)[1](treedef.aux, children)


def _rule_for(kind: type) -> tuple[Flatten, Unflatten]:
    for cls in kind.__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    raise TypeError(f"{kind.__name__} is not a registered pytree node")


def tree_leaves(tree: Any) -> list[Any]:
    return tree_flatten(tree)[0]


def tree_structure(tree: Any) -> TreeDef:
    return tree_flatten(tree)[1]


def tree_leaves_with_path(tree: Any) -> list[tuple[str, Any]]:
    """(key path, leaf) pairs, e.g. ``("ensemble.model", Model(...))`` or ``("[0]['docs']", ...)``."""
    out: list[tuple[str, Any]] = []
    _with_path(tree, "", out)
    return out


def _with_path(tree: Any, path: str, out: list[tuple[str, Any]]) -> None:
    rule = _rule(tree)
    if rule is None:
        out.append((path, tree))
        return
    children = list((parts := rule[0](tree))[0])
    for key, child in zip(_keys(tree, parts[1], len(children)), children, strict=True):
        _with_path(child, path + key, out)


def _keys(tree: Any, aux: Any, n: int) -> list[str]:
    if isinstance(tree, dict):
        return [f"[{k!r}]" for k in aux]
    paths = getattr(aux, "paths", None)  # operators name their constructor arguments
    return list(paths()) if callable(paths) else [f"[{i}]" for i in range(n)]


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``f`` applied to every leaf (and the matching leaves of ``rest``, which share the structure)."""
    leaves, treedef = tree_flatten(tree)
    others = []
    for i, other in enumerate(rest):
        other_leaves, other_def = tree_flatten(other)
        if other_def != treedef:
            raise ValueError(f"tree_map: argument {i + 1} has structure {other_def}, expected {treedef}")
        others.append(other_leaves)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others, strict=True)])


register_pytree_node(list, lambda x: (x, None), lambda aux, ch: list(ch))
register_pytree_node(tuple, lambda x: (x, None), lambda aux, ch: tuple(ch))
register_pytree_node(dict, lambda x: ([x[k] for k in sorted(x, key=repr)], tuple(sorted(x, key=repr))),
                     lambda aux, ch: dict(zip(aux, ch, strict=True)))

"""The op registry: every op Ember knows, built in or registered by a plugin.

A new op is one file (``ops/<op>.py`` defining ``OP = OpDef(...)``) plus one line in ``BUILTIN``.
Plugins register theirs through the ``ember.ops`` entry-point group (each entry point loads an
``OpDef``) or by calling ``register_op``. The spec model (``Spec``, its node union), the compiler's
lowering table, the checker's op rules, the executor's dispatch, the static analysis, ``ember plan``'s
dry run and the SDK's op classes all read this registry.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Annotated, Any

from pydantic import Field

from ..providers.sim import register_role
from ..spec.model import Name, SpecBase
from . import (
    critic,
    debate,
    ensemble,
    execute,
    first,
    fuse,
    generate,
    judge,
    map,
    network,
    python,
    race,
    rank,
    refine,
    score,
    select,
    self_refine,
    verify,
    vote,
)
from .base import OpDef, PlanOp

ENTRY_POINT_GROUP = "ember.ops"

BUILTIN: tuple[OpDef, ...] = (
    generate.OP,
    ensemble.OP,
    vote.OP,
    judge.OP,
    select.OP,
    verify.OP,
    refine.OP,
    critic.OP,
    rank.OP,
    fuse.OP,
    score.OP,
    first.OP,
    network.OP,
    python.OP,
    map.OP,
    execute.OP,
    debate.OP,
    self_refine.OP,
    race.OP,
)

OPS: dict[str, OpDef] = {}
PLAN_OPS: dict[str, PlanOp] = {}


class OpConflict(ValueError):
    """An op (or a plan op) of the same name is registered already."""


def register_op(op: OpDef) -> None:
    """Add ``op`` to the registry (names must be new); ``Spec`` then includes it."""
    _add(op)


def unregister_op(name: str) -> None:
    """Remove a registered op and its plan ops (a plugin's, or a test's) and rebuild ``Spec``."""
    op = OPS.pop(name)
    for p in op.plan_ops:
        PLAN_OPS.pop(p.name, None)


def _add(op: OpDef) -> None:
    if op.name in OPS:
        raise OpConflict(f"op '{op.name}' is registered already")
    clash = [p.name for p in op.plan_ops if p.name in PLAN_OPS]
    if clash:
        raise OpConflict(f"op '{op.name}': plan op '{clash[0]}' is registered already")
    OPS[op.name] = op
    for p in op.plan_ops:
        PLAN_OPS[p.name] = p
        if p.sim is not None:
            register_role(p.role, p.sim)


def get(name: str) -> OpDef | None:
    return OPS.get(name)


def plan_op(name: str) -> PlanOp | None:
    return PLAN_OPS.get(name)


def _load_plugins() -> None:
    try:
        found = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # a broken installed distribution must not break Ember
        return
    for ep in found:
        try:
            op = ep.load()
            if not isinstance(op, OpDef):
                raise TypeError(f"loads a {type(op).__name__}, not an OpDef")
            _add(op)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the others
            warnings.warn(f"ember.ops plugin '{ep.name}' ({ep.value}) not loaded: {exc}", stacklevel=2)


def _build_spec() -> tuple[Any, type[SpecBase]]:
    models = tuple(op.node for op in OPS.values())
    union = Annotated[models[0] if len(models) == 1 else _union(models), Field(discriminator="op")]
    # a map's inline node may be any node
    map.MapNode.model_fields["node"].annotation = union | None  # type: ignore[operator]
    map.MapNode.model_rebuild(force=True)

    class Spec(SpecBase):
        __doc__ = SpecBase.__doc__.split(",")[0] + "."
        nodes: dict[Name, union]  # type: ignore[valid-type]

    return union, Spec


def _union(models: tuple[type, ...]) -> Any:
    out = models[0]
    for m in models[1:]:
        out = out | m
    return out


_BUILT: dict[tuple[type, ...], tuple[Any, type[SpecBase]]] = {}  # the same ops give the same Spec class


def _rebuild() -> tuple[Any, type[SpecBase]]:
    key = tuple(op.node for op in OPS.values())
    if key not in _BUILT:
        _BUILT[key] = _build_spec()
    node, spec = _BUILT[key]
    map.MapNode.model_fields["node"].annotation = node | None  # type: ignore[operator]
    map.MapNode.model_rebuild(force=True)
    _CURRENT[:] = [key]
    return node, spec


_CURRENT: list[tuple[type, ...]] = []  # the ops Spec was last built for


def __getattr__(name: str) -> Any:
    """``Spec`` and ``Node`` are built when first asked for (a plan run never needs them), and
    again after a plugin registers an op."""
    if name in ("Spec", "Node"):
        key = tuple(op.node for op in OPS.values())
        current = bool(_CURRENT) and _CURRENT[0] == key  # MapNode's inline node union is this one
        node, spec = _BUILT[key] if current else _rebuild()
        return spec if name == "Spec" else node
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


for _op in BUILTIN:
    _add(_op)
_load_plugins()

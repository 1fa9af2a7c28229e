"""The xcs plan: a flat, topologically ordered list of frozen nodes; JSON only at the boundary.

A plan can be written out, read back, hashed and executed without the spec it came from. Node kinds
(``NodeKind``): ``llm`` (model requests; ``op`` names the plan op in ``ember_compiler.ops`` that builds
the requests and reads the completions), ``fn`` (a pure built-in function), ``python`` (an SDK
operator) and ``map`` (a sub-plan per list item, held in ``node.subplan``). Values flowing into a
node are expressions (``xcs/expr.py``).

``Plan.from_json`` verifies what it reads (``xcs/verify.py``), and so do the pass manager after each
pass and the executor before running: an invalid plan is a ``PlanError`` naming the node.
``str(plan)`` is the text form (``xcs/printing.py``). The JSON form and the hash are stable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from . import printing
from .expr import DictOf, Expr, deps, from_json
from .verify import PlanError, verify

PLAN_VERSION = 1


class NodeKind(StrEnum):
    LLM = "llm"
    FN = "fn"
    PYTHON = "python"
    MAP = "map"


@dataclass(frozen=True, slots=True)
class PlanNode:
    id: str
    kind: str  # a NodeKind
    op: str
    inputs: dict[str, Expr] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    when: tuple[Expr, ...] = ()  # guard expressions; the node runs only when all are truthy
    source: str | None = None  # "file:line:col" of the spec node this came from
    subplan: Plan | None = None  # a map node's sub-plan (JSON: ``params.plan``)
    _deps: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # JSON expressions are accepted (tests and plan files write them) and typed once, here
        set_ = object.__setattr__
        set_(self, "kind", NodeKind(self.kind))
        set_(self, "inputs", {k: from_json(v) for k, v in self.inputs.items()})
        set_(self, "when", tuple(from_json(g) for g in self.when))
        set_(self, "outputs", tuple(self.outputs))
        if self.kind is NodeKind.MAP and "plan" in self.params:
            params = dict(self.params)
            set_(self, "subplan", Plan.sub_from_json(self.id, params.pop("plan"), self.inputs.get("bind")))
            set_(self, "params", params)
        found: set[str] = set()
        for expr in (*self.inputs.values(), *self.when):
            found |= deps(expr)
        set_(self, "_deps", frozenset(found))

    def replace(self, **changes: Any) -> PlanNode:
        return replace(self, **changes)

    def deps(self) -> frozenset[str]:
        """Ids of the nodes this node reads from (inputs and guards), computed once."""
        return self._deps

    def to_json(self) -> dict[str, Any]:
        params = self.params if self.subplan is None else {**self.params, "plan": self.subplan.sub_json()}
        return {"id": self.id, "kind": str(self.kind), "op": self.op,
                "inputs": {k: e.to_json() for k, e in self.inputs.items()}, "params": params,
                "outputs": list(self.outputs), "when": [g.to_json() for g in self.when], "source": self.source}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanNode:
        return cls(**{k: v for k, v in data.items() if k != "subplan"})


@dataclass(frozen=True)
class Plan:
    name: str
    nodes: tuple[PlanNode, ...]
    inputs: dict[str, dict[str, Any]]  # name -> {"type": ..., "default": ..., "required": ...}
    outputs: dict[str, Expr]  # name -> expression
    models: dict[str, dict[str, Any]]  # binding name -> binding (never a key)
    passes: tuple[str, ...] = ()  # passes applied, with what they changed
    source: str | None = None
    budget: dict[str, Any] | None = None  # the spec's `budget:` ({max_cost_usd, max_calls, max_total_tokens})

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "outputs", {k: from_json(v) for k, v in self.outputs.items()})

    def replace(self, **changes: Any) -> Plan:
        return replace(self, **changes)

    def __str__(self) -> str:
        return printing.to_text(self)

    def verified(self, models: dict[str, Any] | None = None) -> Plan:
        """``verify(self)`` once per plan (it is immutable) and set of bindings; returns the plan."""
        done: list[Any] = self.__dict__.setdefault("_verified", [])
        if not any(m is models for m in done):
            verify(self, models)
            done.append(models)
        return self

    # -- structure ---------------------------------------------------------------------------------
    @cached_property
    def _index(self) -> dict[str, PlanNode]:
        return {n.id: n for n in self.nodes}

    def node(self, node_id: str) -> PlanNode:
        try:
            return self._index[node_id]
        except KeyError:
            raise KeyError(f"plan '{self.name}' has no node '{node_id}'") from None

    @cached_property
    def _users(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for d in sorted(n.deps()):
                found.setdefault(d, []).append(n.id)
        return {k: tuple(v) for k, v in found.items()}

    def users(self, node_id: str) -> tuple[str, ...]:
        """Ids of the nodes that read ``node_id`` (in plan order); outputs are not nodes."""
        return self._users.get(node_id, ())

    def subplans(self) -> Iterator[tuple[PlanNode, Plan]]:
        """(map node, its sub-plan) for every map node, nested ones included, outermost first."""
        for n in self.nodes:
            if n.subplan is not None:
                yield n, n.subplan
                yield from n.subplan.subplans()

    def all_nodes(self) -> Iterator[PlanNode]:
        """Every node, those of sub-plans included."""
        yield from self.nodes
        for _, sub in self.subplans():
            yield from sub.nodes

    # -- JSON ------------------------------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "name": self.name,
            "inputs": self.inputs,
            "models": self.models,
            "nodes": [n.to_json() for n in self.nodes],
            "outputs": {k: e.to_json() for k, e in self.outputs.items()},
            **({"budget": self.budget} if self.budget else {}),
        }

    @cached_property  # a plan is immutable: hash it once (cached_property writes past the frozen guard)
    def hash(self) -> str:
        """Content hash of everything that affects execution (not source positions or pass notes)."""
        body = self.body()
        for n in body["nodes"]:
            n.pop("source", None)
        return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "passes": list(self.passes), "source": self.source, "hash": self.hash}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        """Read and verify a plan.

        Raises:
            PlanError: an unsupported version, a hash that does not match, or an invalid plan.
        """
        if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
            raise PlanError(f"unsupported plan version {data.get('version') if isinstance(data, dict) else data!r}")
        try:
            plan = cls(
                name=data["name"],
                nodes=tuple(PlanNode.from_json(n) for n in data["nodes"]),
                inputs=data["inputs"],
                outputs=data["outputs"],
                models=data["models"],
                passes=tuple(data.get("passes", ())),
                source=data.get("source"),
                budget=data.get("budget"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"malformed plan: {type(exc).__name__}: {exc}") from None
        if "hash" in data and data["hash"] != plan.hash:
            raise PlanError("plan hash does not match its content")
        verify(plan)
        return plan

    # -- sub-plans (a map node's) --------------------------------------------------------------------
    def sub_json(self) -> dict[str, Any]:
        return {"nodes": [n.to_json() for n in self.nodes], "result": self.outputs["result"].to_json()}

    @classmethod
    def sub_from_json(cls, node_id: str, body: Any, bind: Expr | None = None) -> Plan:
        """A map node's sub-plan: its inputs are the item (``#item``) and what ``bind`` captures."""
        bound = bind.keys() if isinstance(bind, DictOf) else ()
        inputs = {name: {} for name in ("#item", *bound)}
        return cls(name=node_id, nodes=tuple(PlanNode.from_json(n) for n in body["nodes"]), inputs=inputs,
                   outputs={"result": body["result"]}, models={})


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

"""The xcs plan: a flat, topologically ordered list of nodes that is plain JSON.

A plan can be written out, read back, hashed and executed without the spec it came from.

Node kinds: ``llm`` (model requests; ``op`` names the op rule in ``ember_compiler.ops`` that builds
the requests and turns completions into output ports) and ``fn`` (a pure built-in function).

Values flowing into a node are *expressions*, JSON objects with one tag:

=====================================  ===============================================
``{"$in": NAME}``                      a network input
``{"$ref": [NODE, PORT]}``             one output port of an upstream node
``{"$node": NODE}``                    all output ports of a node, as a mapping
``{"$list": [E, ...]}``                a list of expressions
``{"$dict": {K: E, ...}}``             a mapping of expressions
``{"$fmt": [str | E, ...]}``           text interpolation: parts joined as strings
``{"$expr": SRC, "vars": {K: E}}``     a sandboxed Jinja expression (``when`` guards)
``{"$lit": VALUE}``                    a literal JSON value
=====================================  ===============================================
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)
class PlanNode:
    id: str
    kind: str  # "llm" | "fn"
    op: str
    inputs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    when: tuple[Any, ...] = ()  # guard expressions; the node runs only when all are truthy
    source: str | None = None  # "file:line:col" of the spec node this came from

    def replace(self, **changes: Any) -> PlanNode:
        return replace(self, **changes)

    def deps(self) -> set[str]:
        """Ids of the nodes this node reads from (inputs and guard)."""
        found: set[str] = set()
        for expr in (*self.inputs.values(), *self.when):
            found.update(expr_deps(expr))
        return found

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["outputs"] = list(self.outputs)
        data["when"] = list(self.when)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanNode:
        return cls(**{**data, "outputs": tuple(data.get("outputs", ())), "when": tuple(data.get("when", ()))})


@dataclass(frozen=True)
class Plan:
    name: str
    nodes: tuple[PlanNode, ...]
    inputs: dict[str, dict[str, Any]]  # name -> {"type": ..., "default": ...}
    outputs: dict[str, Any]  # name -> expression
    models: dict[str, dict[str, Any]]  # binding name -> binding (never a key)
    passes: tuple[str, ...] = ()  # passes applied, with what they changed
    source: str | None = None
    budget: dict[str, Any] | None = None  # the spec's `budget:` ({max_cost_usd, max_calls, max_tokens})

    def replace(self, **changes: Any) -> Plan:
        return replace(self, **changes)

    def node(self, node_id: str) -> PlanNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def body(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "name": self.name,
            "inputs": self.inputs,
            "models": self.models,
            "nodes": [n.to_json() for n in self.nodes],
            "outputs": self.outputs,
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
        if data.get("version") != PLAN_VERSION:
            raise ValueError(f"unsupported plan version {data.get('version')!r}")
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
        if "hash" in data and data["hash"] != plan.hash:
            raise ValueError("plan hash does not match its content")
        return plan


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def walk_expr(expr: Any) -> Iterator[dict[str, Any]]:
    """Every tagged sub-expression of ``expr``, outermost first."""
    if not isinstance(expr, dict):
        return
    yield expr
    if "$list" in expr:
        for e in expr["$list"]:
            yield from walk_expr(e)
    elif "$dict" in expr:
        for e in expr["$dict"].values():
            yield from walk_expr(e)
    elif "$fmt" in expr:
        for e in expr["$fmt"]:
            yield from walk_expr(e)
    elif "$expr" in expr:
        for e in expr["vars"].values():
            yield from walk_expr(e)


def expr_deps(expr: Any) -> set[str]:
    deps: set[str] = set()
    for e in walk_expr(expr):
        if "$ref" in e:
            deps.add(e["$ref"][0])
        elif "$node" in e:
            deps.add(e["$node"])
    return deps


def lit(value: Any) -> dict[str, Any]:
    return {"$lit": value}


def ref(node: str, port: str) -> dict[str, Any]:
    return {"$ref": [node, port]}

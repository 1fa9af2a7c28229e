"""What an op is: one ``OpDef`` holds everything Ember knows about it (see docs/architecture.md).

An op file (``ops/<op>.py``) defines its spec node model, its ports with their types, the fields
that name models or hold templates, how it lowers to plan nodes, its semantic checks and the plan
ops it lowers to; each ``PlanOp`` says how its nodes run (``fn``: a pure function; ``llm``: build the
requests, then read the completions), its effects, how many model calls it makes (statically), which
list lengths it knows before running, how the sim answers it (its role), what ``ember plan``'s dry
run answers it with, and how it prints. The SDK builds its operator class from ``SdkDef``.

Op files import only this module, the spec's base models, the provider interface and the text
utilities: the compiler, the checker and the executor hand them *contexts* (``LowerCtx``,
``CheckCtx``, ``CallContext``) and never the other way round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..providers.base import Completion, Request


@dataclass(frozen=True, slots=True)
class Effects:
    """What running a node does besides computing its ports.

    ``sampled``: its results are random draws (two identical nodes may differ); ``billable``: it makes
    model calls that cost money. Passes read these: ``dedupe`` merges only billable nodes, and sampled
    ones only when their binding is deterministic.
    """

    sampled: bool = False
    billable: bool = False


PURE = Effects()
MODEL_CALL = Effects(sampled=True, billable=True)


class Lengths(Protocol):
    """What the static analysis knows about list lengths (see ``xcs/analysis.py``)."""

    def of(self, expr: Any) -> int | None:
        """The length of the list ``expr`` evaluates to, when known before running."""

    def port(self, node: str, port: str) -> int | None:
        """The known length of a node's list port."""


@dataclass(slots=True)
class CallContext:
    """What an ``llm`` rule needs to know about the call besides its input values."""

    node: Any  # the plan node (``.id``, ``.op``, ``.params``)
    binding: dict[str, Any]
    supports_n: bool
    meta: dict[str, Any]  # seed, example_id, node_id, truth, choices, sim
    models: dict[str, Any] = field(default_factory=dict)  # every binding of the plan (race calls several)

    def requests(self, messages: list[dict[str, str]], n: int = 1, offset: int = 0,
                 schema: dict[str, Any] | None = None, **meta: Any) -> list[Request]:
        """``n`` samples of one prompt: one request with ``n`` if the provider can, else ``n`` requests."""
        name = self.node.params["model"]
        if self.supports_n or n == 1:
            return [Request(name, self.binding, messages, n, {**self.meta, **meta, "sample_offset": offset}, schema)]
        return [
            Request(name, self.binding, messages, 1, {**self.meta, **meta, "sample_offset": offset + j}, schema)
            for j in range(n)
        ]


Send = Callable[[list[Request]], Awaitable[list[Completion]]]
FnRule = Callable[[Any, dict[str, Any]], dict[str, Any]]
BuildRule = Callable[[Any, dict[str, Any], CallContext], list[Request]]
FinishRule = Callable[[Any, dict[str, Any], list[Completion]], dict[str, Any]]
DriveRule = Callable[[Any, dict[str, Any], CallContext, Send], Awaitable[dict[str, Any]]]


def one_per_sample(node: Any, lengths: Lengths) -> int:
    """The default static call rule of an ``llm`` op: ``n`` samples (default 1), in one request."""
    return int(node.params.get("n", 1))


@dataclass(frozen=True, slots=True)
class PlanOp:
    """One form of plan node (``node.op``) and the rules that run, count and print it."""

    name: str
    kind: str  # "llm" | "fn" | "python" | "map"
    ports: tuple[str, ...] | None  # None: each node lists its own (a network's pack, a python operator)
    params: tuple[str, ...] = ()  # params every node of this op must have (``verify`` checks them)
    run: FnRule | None = None  # fn
    build: BuildRule | None = None  # llm: the requests
    finish: FinishRule | None = None  # llm: completions (in request order) -> ports
    drive: DriveRule | None = None  # llm that decides between requests (the vote cut-off)
    null_tolerant: bool = False  # runs when an input comes from a skipped node (it sees None)
    effects: Effects = PURE
    calls: Callable[[Any, Lengths], int | None] | None = None  # llm: model calls per run (None: unknown)
    per_call_requests: bool = False  # one request per call (verify: one per candidate), not one with n
    sequential: bool = False  # its calls are made one after another (sequential verify): depth = calls, width 1
    lengths: Callable[[Any, Lengths], dict[str, int | None]] | None = None  # list ports known statically
    role: str | None = None  # the sim role its requests carry (the sim's behaviour for them)
    sim: Callable[..., list[str]] | None = None  # the sampler of a new role (``providers.sim.Sampler``)
    dry_text: Callable[[int], str] | None = None  # ``ember plan``'s placeholder reply for sample j
    pp: Callable[[Any], dict[str, Any]] | None = None  # params shown when printed (default: all but templates)
    # ports read from the reply text of the node's one request (n == 1): a plan whose answer is one of
    # them can stream that reply as the model writes it (the executor's `on_text`). The deltas make up
    # the node's `text` port; another port is read from that text (`answer`: after `Answer:`).
    streams: tuple[str, ...] = ()
    # fn: where a port's value comes from unchanged, as (node id, port) — a network's pack passes each
    # packed value on, refine's result the last round's answer when that round runs; None: computed.
    # Reads the node's input expressions in their JSON form (``{"$ref": [NODE, PORT]}``).
    passes: Callable[[Any, str], tuple[str, str] | None] | None = None


@dataclass(frozen=True, slots=True)
class SdkDef:
    """The op's Python operator class (``ops.Ensemble(...)``), built by ``ember_compiler.sdk.ops``.

    Constructor arguments are the spec fields ``init`` (Models where the spec names a binding); the
    call's inputs are ``value_fields`` (spec fields given at call time) and, for template ops, any
    template variable by name.
    """

    name: str
    doc: str
    init: dict[str, Any]  # constructor keyword -> default (``REQUIRED`` for none)
    value_fields: tuple[str, ...] = ()
    validate: Callable[[dict[str, Any]], str | None] | None = None  # why these arguments are wrong


REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()


class LowerCtx(Protocol):
    """What the compiler gives a lowering rule (``compiler/lower.py`` implements it)."""

    id: str

    def make(self, kind: str, op: str, inputs: dict[str, Any], params: dict[str, Any], *,
             part: str | None = None, outputs: Any = None, guards: tuple[Any, ...] = ()) -> Any: ...
    def part(self, name: str) -> str: ...
    def value(self, value: Any) -> Any: ...
    def model(self, name: str) -> str: ...
    def static(self, value: Any) -> Any: ...
    def static_tree(self, value: Any) -> Any: ...
    def template_vars(self, node: Any) -> Any: ...
    def plain(self, value: Any) -> Any: ...
    def ref(self, node: str, port: str) -> Any: ...
    def node_ref(self, node: str) -> Any: ...
    def list(self, items: list[Any]) -> Any: ...
    def guard(self, source: str, variables: dict[str, Any]) -> Any: ...
    def network(self, node: Any) -> list[Any]: ...  # inline a sub-spec (the network op)
    def map(self, node: Any) -> list[Any]: ...  # a sub-plan per item (the map op)


class CheckCtx(Protocol):
    """What the checker gives an op's semantic checks (``compiler/check_rules.py`` implements it)."""

    view: Any  # the spec's inputs, params, models, nodes and outputs
    imports_operators: bool  # `ember validate --import`
    folder: Any  # the spec's folder
    memo: dict[str, Any]  # what the op's checks keep for this spec

    def error(self, loc: tuple, code: str, message: str, hint: str | None = None, key: bool = False) -> None: ...
    def declare_ports(self, nid: str, ports: tuple[str, ...]) -> None: ...
    def subspec(self, nid: str, node: Any, bound: tuple[str, ...] = ()) -> None: ...
    def subspec_inputs(self, nid: str) -> dict[str, Any] | None: ...
    def check_inline(self, nid: str, inner: Any, base: tuple, item: str) -> None: ...


@dataclass(frozen=True)
class OpDef:
    """Everything about one spec op (``op: NAME`` in a spec)."""

    name: str
    summary: str
    node: type  # the pydantic model of its spec node
    ports: dict[str, Any]  # output port -> Python type (a ``${node.PORT}`` may name it)
    lower: Callable[[LowerCtx, Any], list[Any]]
    plan_ops: tuple[PlanOp, ...] = ()
    model_fields: tuple[str, ...] = ()  # fields whose value is a model binding name
    template_fields: tuple[str, ...] = ()  # Jinja template fields
    static_fields: tuple[str, ...] = ()  # integer fields known before running (literal or ${params.X})
    check: Callable[[CheckCtx, str, Any, tuple], None] | None = None  # op-specific semantic checks
    prepare: Callable[[CheckCtx, str, Any], None] | None = None  # before references are checked
    ports_declared_by_node: bool = False  # network/python: the ports are the sub-spec's or operator's
    sdk: SdkDef | None = None
    sdk_note: str = ""  # without an SdkDef: what the SDK offers instead (docs and the registry test read it)
    # a minimal node of this op, reading inputs `question` (string) and `choices` (array) and the sim
    # binding `m`: the registry test compiles and runs it, the docs show it
    example: dict[str, Any] | None = None

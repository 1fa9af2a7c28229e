"""Tracing: run a network's ``forward`` on proxies and record the spec it stands for.

A ``Proxy`` stands for a value that exists only when the plan runs (a network input or an
operator's output port): it is never a recorded result, so a traced plan cannot replay stale values.
Each operator call emits one spec node (a ``Network`` is inlined, its ids prefixed); the recorded
spec is lowered by the compiler's own ``lower`` — so a traced network and the YAML ``to_spec``
writes for it give the same plan, hash included.

Python control flow cannot depend on a proxy: ``bool(proxy)`` (``if``, ``while``, ``and``/``or``,
a comparison used as a bool), ``len``, iteration, indexing and string formatting raise
``NotTraceable`` naming the function and line. Comparisons and ``&``/``|``/``~`` build conditions
for ``with when(cond):``, which guards the calls inside (a spec's ``when:``).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel

from ember_compiler.errors import EmberError
from ember_compiler.sdk.model import Model
from ember_compiler.sdk.operator import EAGER, Namer, Network, Operator, OperatorError

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACE: ContextVar[Trace | None] = ContextVar("ember_trace", default=None)


class NotTraceable(EmberError):
    """A forward did something with a traced value that needs the value itself."""


def user_frame(depth: int = 1) -> tuple[str, str, int]:
    """(function qualname, file, line) of the innermost caller outside Ember."""
    frame = sys._getframe(depth)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
        frame = frame.f_back
    if frame is None:
        return ("<unknown>", "<unknown>", 0)
    return (frame.f_code.co_qualname, frame.f_code.co_filename, frame.f_lineno)


def _refuse(what: str, hint: str) -> NotTraceable:
    func, file, line = user_frame(2)
    return NotTraceable(f"{func} ({file}:{line}) is not traceable: it {what}, which is not known while "
                        f"tracing. {hint}")


_BRANCH_HINT = ("Guard calls with `with when(cond):` (a spec's when:), or make this step a plain Operator "
                "(not a Network): its forward then runs on real values at run time.")


class Traced:
    """Base of values that exist only at run time; every concrete use refuses clearly."""

    __slots__ = ()

    def __bool__(self) -> bool:
        raise _refuse("branches on a model output (bool() of a traced value: if, while, and/or, or a "
                      "comparison used as a bool)", _BRANCH_HINT)

    def __iter__(self):
        raise _refuse("iterates over a traced value of unknown length",
                      "Pass the whole list on (e.g. candidates=r.answers), or use a plain Operator.")

    def __len__(self) -> int:
        raise _refuse("takes len() of a traced value", "Use a plain Operator for logic on values.")

    def __getitem__(self, key: Any) -> Any:
        raise _refuse(f"indexes a traced value ([{key!r}])", "Use a plain Operator for logic on values.")

    def __str__(self) -> str:
        raise _refuse("formats a traced value as text (str(), f-string)",
                      "Pass it to an operator input instead, e.g. op(question=q) with a template "
                      "reading {{ question }}.")

    __format__ = lambda self, spec: self.__str__()  # noqa: E731
    __int__ = __float__ = __index__ = __len__
    __hash__ = object.__hash__

    def __contains__(self, item: Any) -> bool:
        raise _refuse("tests membership in a traced value", _BRANCH_HINT)

    # comparisons build conditions for `when`
    def __eq__(self, other: Any) -> Cond:  # type: ignore[override]
        return Cond.compare(self, "==", other)

    def __ne__(self, other: Any) -> Cond:  # type: ignore[override]
        return Cond.compare(self, "!=", other)

    def __lt__(self, other: Any) -> Cond:
        return Cond.compare(self, "<", other)

    def __le__(self, other: Any) -> Cond:
        return Cond.compare(self, "<=", other)

    def __gt__(self, other: Any) -> Cond:
        return Cond.compare(self, ">", other)

    def __ge__(self, other: Any) -> Cond:
        return Cond.compare(self, ">=", other)


class Proxy(Traced):
    """A network input (``head == "inputs"``) or one output port of a traced node."""

    __slots__ = ("head", "port")

    def __init__(self, head: str, port: str) -> None:
        object.__setattr__(self, "head", head)
        object.__setattr__(self, "port", port)

    @property
    def ref(self) -> str:
        return f"${{{self.head}.{self.port}}}"

    @property
    def jinja(self) -> str:
        return f"{self.head}.{self.port}"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocol probes (copy, pickle, numpy) are not user code
            raise AttributeError(name)
        raise _refuse(f"reads .{name} of a traced value", "Use a plain Operator for logic on values.")

    def __repr__(self) -> str:
        return f"<traced {self.jinja}>"


def _jinja_literal(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)  # Jinja reads Python string literals
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_jinja_literal(v) for v in value) + "]"
    raise OperatorError(f"cannot compare a traced value with {type(value).__name__} in a condition")


class Cond(Traced):
    """A condition over traced values, as a Jinja expression in the spec namespace."""

    __slots__ = ("source", "compound")

    def __init__(self, source: str, compound: bool) -> None:
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "compound", compound)

    @staticmethod
    def operand(value: Any) -> str:
        if isinstance(value, Proxy):
            return value.jinja
        if isinstance(value, Cond):
            return f"({value.source})" if value.compound else value.source
        if isinstance(value, Traced):
            raise OperatorError("compare one port of an operator's result (e.g. r.answer), not the result")
        return _jinja_literal(value)

    @classmethod
    def compare(cls, left: Any, op: str, right: Any) -> Cond:
        return cls(f"{cls.operand(left)} {op} {cls.operand(right)}", True)

    def __and__(self, other: Any) -> Cond:
        return Cond(f"{Cond.operand(self)} and {Cond.operand(other)}", True)

    def __or__(self, other: Any) -> Cond:
        return Cond(f"{Cond.operand(self)} or {Cond.operand(other)}", True)

    def __invert__(self) -> Cond:
        return Cond(f"not {Cond.operand(self)}", True)

    __rand__ = __and__
    __ror__ = __or__

    def __repr__(self) -> str:
        return f"<condition {self.source}>"


Proxy.__and__ = Cond.__and__  # type: ignore[attr-defined]
Proxy.__or__ = Cond.__or__  # type: ignore[attr-defined]
Proxy.__invert__ = Cond.__invert__  # type: ignore[attr-defined]


class Result(Traced):
    """What a traced call returns: its ports as attributes (``r.answer``)."""

    __slots__ = ("_node", "_values", "_owner")

    def __init__(self, node: str, values: dict[str, Any], owner: str) -> None:
        object.__setattr__(self, "_node", node)
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, port: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if port.startswith("__") or port not in values:
            owner = object.__getattribute__(self, "_owner")
            raise OperatorError(f"{owner} has no output '{port}' (outputs: {', '.join(values) or 'none'})")
        return values[port]

    def __repr__(self) -> str:
        return f"<traced result of {object.__getattribute__(self, '_node')}>"


# -- when -------------------------------------------------------------------------------------------
@contextmanager
def when(condition: Any):
    """Guard the operator calls in the block: they run only if ``condition`` is truthy.

    Traced, ``condition`` is a traced value or a comparison (``route.answer == 'math'``) and becomes
    the ``when:`` of every node emitted in the block; eagerly it is a plain value, and calls in a
    false block return outputs whose fields are all None (as skipped nodes in a spec do).
    """
    tracer = TRACE.get()
    if tracer is not None:
        if not isinstance(condition, Proxy | Cond):
            condition = bool(condition)
        tracer.guards.append(condition)
        try:
            yield
        finally:
            tracer.guards.pop()
        return
    scope = EAGER.get()
    if scope is None:
        raise OperatorError("when(...) is for use inside a network's forward")
    scope.guards.append(bool(condition))
    try:
        yield
    finally:
        scope.guards.pop()


# -- the tracer -------------------------------------------------------------------------------------
class Trace:
    """Records spec nodes (plain dicts; `Model` objects stand where binding names will go)."""

    def __init__(self, owner: Any) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, str] = {}
        self.operators: dict[str, Operator] = {}  # python node id -> the live operator
        self.guards: list[Any] = []
        self.namer = Namer(owner)
        self.portable = True  # False when a python node's init holds values YAML cannot carry

    def call(self, op: Operator, args: tuple, kwargs: dict) -> Any:
        values = op.input_values(args, kwargs)
        if isinstance(op, Network):
            return self.inline(op, values)
        node_id = self.namer.name(op)
        _, file, line = user_frame(1)
        if hasattr(op, "spec_node"):
            node = op.spec_node(values, self)
        else:
            node = self.python_node(op, values)
            self.operators[node_id] = op  # runs as this very instance, never re-imported
        when = self.when_field()
        if when is not None:
            node["when"] = when
        self.nodes[node_id] = node
        self.sources[node_id] = f"{file}:{line}:1"
        ports = op.ports() if hasattr(op, "ports") else tuple(op.Output.model_fields)
        return Result(node_id, {p: Proxy(node_id, p) for p in ports}, op.op_name)

    def inline(self, net: Network, values: dict[str, Any]) -> Any:
        check_names(net, values)
        given = {**_defaults(net.Input), **values}
        node_id = self.namer.name(net)
        saved = self.namer
        self.namer = saved.child(net, node_id)
        try:
            returned = net.forward(**given)
        finally:
            self.namer = saved
        return Result(node_id, returned_ports(net, returned), net.op_name)

    def python_node(self, op: Operator, values: dict[str, Any]) -> dict[str, Any]:
        check_names(op, values)
        cls = type(op)
        # a class defined in a function runs from its live instance; its call names it, unimportably
        qualname = cls.__qualname__.replace(".<locals>.", ".").replace("<locals>", "locals")
        node: dict[str, Any] = {"op": "python", "call": f"{cls.__module__}:{qualname}"}
        if values:
            node["with"] = {k: self.value(v, f"{op.op_name} input '{k}'") for k, v in values.items()}
        init = op.init_args
        encoded = {k: self.static(v) for k, v in init.kwargs.items()}
        if init.args:
            encoded["_args"] = [self.static(v) for v in init.args]
            self.portable = False
        if encoded:
            node["init"] = encoded
        if "<locals>" in cls.__qualname__:
            self.portable = False
        return node

    def static(self, value: Any) -> Any:
        """A constructor argument as JSON (Models as binding mappings)."""
        if isinstance(value, Model):
            return value.binding if value.name is None else {"name": value.name, **value.binding}
        if isinstance(value, list | tuple):
            return [self.static(v) for v in value]
        if isinstance(value, dict):
            return {str(k): self.static(v) for k, v in value.items()}
        if isinstance(value, str) and "${" in value:
            raise OperatorError(f"constructor argument {value!r} contains '${{', which a spec reads as a reference")
        if value is None or isinstance(value, bool | int | float | str):
            return value
        self.portable = False
        return {"$repr": repr(value)}

    def value(self, value: Any, where: str) -> Any:
        """A call argument as a spec value: a reference string, or literal JSON."""
        if isinstance(value, Proxy):
            return value.ref
        if isinstance(value, Cond):
            raise OperatorError(f"{where}: a condition can only be used in `with when(...)`")
        if isinstance(value, Traced):
            raise OperatorError(f"{where}: pass one output of a result (e.g. r.answer), not the whole result")
        if isinstance(value, list | tuple):
            return [self.value(v, where) for v in value]
        if isinstance(value, dict):
            return {str(k): self.value(v, where) for k, v in value.items()}
        if isinstance(value, BaseModel):
            return self.value(value.model_dump(mode="json"), where)
        if isinstance(value, str) and "${" in value:
            raise OperatorError(f"{where}: the text {value[:40]!r} contains '${{', which a spec reads as a reference")
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise OperatorError(f"{where}: {type(value).__name__} is not a JSON value or a traced value")

    def when_field(self) -> Any:
        if not self.guards:
            return None
        if len(self.guards) == 1 and isinstance(self.guards[0], Proxy):
            return self.guards[0].ref
        if any(g is False for g in self.guards):
            return False
        guards = [g for g in self.guards if g is not True]
        if len(guards) == 1 and isinstance(guards[0], Cond):
            return guards[0].source  # as a spec writes it: `route.answer == 'math'`
        parts = [Cond.operand(g) for g in guards]
        return " and ".join(parts) if parts else None


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    return {name: f.get_default(call_default_factory=True) for name, f in model.model_fields.items()
            if not f.is_required()}


def check_names(op: Operator, values: dict[str, Any]) -> None:
    fields = op.Input.model_fields
    if op.Input.model_config.get("extra") != "allow":
        unknown = [k for k in values if k not in fields]
        if unknown:
            raise OperatorError(f"{op.op_name}: unknown input '{unknown[0]}' (inputs: {', '.join(fields)})")
    missing = [n for n, f in fields.items() if f.is_required() and n not in values]
    if missing:
        raise OperatorError(f"{op.op_name}: missing input '{missing[0]}'")


def returned_ports(op: Operator, returned: Any) -> dict[str, Any]:
    """What a traced forward returned, as output name -> traced value (or literal)."""
    fields = op.Output.model_fields
    if isinstance(returned, Result):
        values = object.__getattribute__(returned, "_values")
        out = {name: values[name] for name in fields if name in values}
    elif isinstance(returned, dict):
        out = dict(returned)
    elif isinstance(returned, BaseModel):
        out = {name: getattr(returned, name) for name in type(returned).model_fields}
    elif len(fields) == 1:
        out = {next(iter(fields)): returned}
    else:
        raise OperatorError(f"{op.op_name}.forward returned {type(returned).__name__}; return a dict "
                            f"with {', '.join(fields)}")
    extra = [k for k in out if k not in fields]
    missing = [k for k, f in fields.items() if f.is_required() and k not in out]
    if extra or missing:
        what = f"unknown output '{extra[0]}'" if extra else f"missing output '{missing[0]}'"
        raise OperatorError(f"{op.op_name}.forward: {what} (Output fields: {', '.join(fields)})")
    return out

"""`Operator`: a typed unit of a network — pydantic ``Input``/``Output``, a ``forward``, static config.

Constructor arguments are an operator's static configuration: they are recorded as given (they are
its pytree children and its ``init:`` in a spec). Calling an operator validates its input, runs
``forward`` (sync or async) and validates its output; errors name the operator and the field.

    class Classify(Operator):
        class Input(BaseModel):
            text: str
        class Output(BaseModel):
            label: str
        def __init__(self, labels: list[str]):
            self.labels = labels
        def forward(self, text: str) -> dict:
            return {"label": next((l for l in self.labels if l in text.lower()), self.labels[0])}

A ``Network`` is an operator whose ``forward`` composes other operators: ``jit`` traces *into* it,
while any other operator is one opaque ``python`` node whose ``forward`` runs on concrete values.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from ember_compiler.errors import EmberError
from ember_compiler.sdk import engine
from ember_compiler.sdk.pytree import register_pytree_node

RESERVED_IDS = ("inputs", "params")


class OperatorError(EmberError):
    """An operator was called or built wrongly (bad input or output, bad configuration)."""


# -- construction: the static configuration ------------------------------------------------------
@dataclass(frozen=True)
class InitArgs:
    """Constructor arguments as given: positional ones (rare) and keyword ones, in order."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class _OpAux:
    cls: type
    n_args: int
    names: tuple[str, ...]

    def paths(self) -> list[str]:
        return [f"[{i}]" for i in range(self.n_args)] + [f".{n}" for n in self.names]


def _capture(cls: type, args: tuple, kwargs: dict) -> InitArgs:
    sig = inspect.signature(cls.__init__)
    try:
        bound = sig.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise OperatorError(f"{cls.__name__}(...): {exc}") from None
    params = list(sig.parameters.values())[1:]
    var_pos = any(p.kind is p.VAR_POSITIONAL for p in params)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for p in params:
        if p.name not in bound.arguments:
            continue
        value = bound.arguments[p.name]
        if p.kind is p.VAR_POSITIONAL:
            positional.extend(value)
        elif p.kind is p.VAR_KEYWORD:
            keywords.update(value)
        elif p.kind is p.POSITIONAL_ONLY or (var_pos and p.kind is p.POSITIONAL_OR_KEYWORD):
            positional.append(value)
        else:
            keywords[p.name] = value
    return InitArgs(tuple(positional), keywords)


# -- eager scopes: node names and guards while operators run eagerly -------------------------------
def snake(name: str) -> str:
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    out = re.sub(r"[^a-z0-9_]", "_", out) or "op"
    return out + "_op" if out in RESERVED_IDS else out


def attribute_names(owner: Any) -> dict[int, str]:
    """id(operator) -> the attribute that holds it (``ensemble``, ``judges_0``, ``experts_math``)."""
    names: dict[int, str] = {}
    for attr, value in vars(owner).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, Operator):
            names.setdefault(id(value), attr)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, Operator):
                    names.setdefault(id(item), f"{attr}_{i}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, Operator) and re.fullmatch(r"[A-Za-z0-9_]+", str(key)):
                    names.setdefault(id(item), f"{attr}_{key}")
    return names


class Namer:
    """Node ids for the operators a network calls: its attribute names (or the operator's class in
    snake case), prefixed by the enclosing networks, numbered on repeats (``vote``, ``vote_2``).
    Ids are valid spec ids *and* Jinja names, so ``when:`` expressions can read them."""

    def __init__(self, owner: Any = None, prefix: str = "", used: set[str] | None = None) -> None:
        self.attrs = attribute_names(owner) if owner is not None else {}
        self.prefix = prefix
        self.used = used if used is not None else set()

    def name(self, op: Any) -> str:
        base = self.prefix + (self.attrs.get(id(op)) or snake(type(op).__name__))
        candidate, k = base, 1
        while candidate in self.used:
            k += 1
            candidate = f"{base}_{k}"
        self.used.add(candidate)
        return candidate

    def child(self, owner: Any, node_id: str) -> Namer:
        return Namer(owner, node_id + "_", self.used)


@dataclass
class EagerScope:
    namer: Namer
    inputs: dict[str, Any]  # the running network's inputs: `{{ inputs.X }}` in templates
    guards: list[bool] = field(default_factory=list)


EAGER: ContextVar[EagerScope | None] = ContextVar("ember_eager", default=None)


@contextmanager
def eager_scope(op: Any, inputs: dict[str, Any]):
    parent = EAGER.get()
    namer = Namer(op) if parent is None else parent.namer.child(op, parent.namer.name(op))
    token = EAGER.set(EagerScope(namer, inputs, list(parent.guards) if parent else []))
    try:
        yield
    finally:
        EAGER.reset(token)


def eager_node_id(op: Any) -> str:
    scope = EAGER.get()
    session = engine.CURRENT.get()
    prefix = session.prefix if session is not None else ""
    return prefix + (scope.namer.name(op) if scope is not None else snake(type(op).__name__))


class _Skipped:
    """The fields of a skipped call's output (eager mode): falsy, printed as SKIPPED, and — as in a
    spec — passing one to an operator skips that call too (``First`` reads it as None)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SKIPPED"

    def __bool__(self) -> bool:
        return False


SKIPPED: Any = _Skipped()


def _has_skipped(value: Any) -> bool:
    if value is SKIPPED:
        return True
    if isinstance(value, list | tuple):
        return any(_has_skipped(v) for v in value)
    if isinstance(value, dict):
        return any(_has_skipped(v) for v in value.values())
    return False


def unskip(value: Any) -> Any:
    """``value`` with every SKIPPED as None."""
    if value is SKIPPED:
        return None
    if isinstance(value, list | tuple):
        return type(value)(unskip(v) for v in value)
    if isinstance(value, dict):
        return {k: unskip(v) for k, v in value.items()}
    return value


def eager_skipped(op: Any, values: dict[str, Any]) -> bool:
    """Whether this eager call is skipped: a false `when`, or (unless the op tolerates nulls) an input
    from a skipped call. A skipped call still takes its node id, so later calls get the same ids (and
    the sim the same draws) as in the traced plan."""
    scope = EAGER.get()
    guarded = scope is not None and not all(scope.guards)
    if not guarded and (op.null_tolerant or not _has_skipped(values)):
        return False
    if scope is not None:
        scope.namer.name(op)
    return True


# -- the operator ---------------------------------------------------------------------------------
class Operator:
    """Base class of every operator (see the module docstring).

    Class attributes: ``Input`` and ``Output`` (pydantic models), ``cheap`` (a synchronous forward
    that is fast and calls no models runs inline on the event loop instead of in a worker thread).
    """

    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    cheap: ClassVar[bool] = False
    null_tolerant: ClassVar[bool] = False  # runs (seeing None) when an input comes from a skipped call
    _ember_init: InitArgs

    def __new__(cls, *args: Any, **kwargs: Any) -> Operator:
        self = super().__new__(cls)
        self.__dict__["_ember_init"] = _capture(cls, args, kwargs)
        return self

    def forward(self, **inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    # -- static configuration ---------------------------------------------------------------------
    @property
    def init_args(self) -> InitArgs:
        return self._ember_init

    @property
    def op_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        init = self._ember_init
        parts = [repr(a) for a in init.args] + [f"{k}={v!r}" for k, v in init.kwargs.items()]
        return f"{self.op_name}({', '.join(parts)})"

    # -- calling ------------------------------------------------------------------------------------
    def _enter(self, args: tuple, kwargs: dict[str, Any]) -> tuple[bool, Any]:
        """(True, result) when tracing or skipped; else (False, the validated input values)."""
        from ember_compiler.sdk import trace

        tracer = trace.TRACE.get()
        if tracer is not None:
            return True, tracer.call(self, args, kwargs)
        values = self.input_values(args, kwargs)
        if eager_skipped(self, values):
            return True, self.skipped()
        return False, unskip(values)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        done, values = self._enter(args, kwargs)
        if done:
            return values
        with _ensure_session(values):
            if self.runs_on_loop():
                session = engine.CURRENT.get()
                return engine.submit(session.loop, self.ainvoke(values))
            return self.invoke(values)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Call from async code (``await op.acall(...)``); calls in one ``asyncio.gather`` overlap."""
        done, values = self._enter(args, kwargs)
        if done:
            return values
        return await engine.run_async(lambda: self.ainvoke(values))

    def runs_on_loop(self) -> bool:
        """Whether calling needs the event loop (an async forward, a built-in op's model calls)."""
        return inspect.iscoroutinefunction(self.forward)

    def input_values(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        """Call arguments by Input field name (positional ones in field order); not yet validated."""
        if len(args) == 1 and not kwargs and isinstance(args[0], BaseModel) and isinstance(args[0], self.Input):
            return {name: getattr(args[0], name) for name in type(args[0]).model_fields}
        names = list(self.Input.model_fields)
        if len(args) > len(names):
            raise OperatorError(f"{self.op_name}: takes {len(names)} positional input(s) "
                                f"({', '.join(names) or 'none'}), got {len(args)}")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key in values:
                raise OperatorError(f"{self.op_name}: input '{key}' given twice")
            values[key] = value
        return values

    def validate_input(self, values: dict[str, Any]) -> BaseModel:
        try:
            return self.Input.model_validate(values)
        except ValidationError as exc:
            raise OperatorError(_describe(self.op_name, "input", exc)) from None

    def validate_output(self, result: Any) -> BaseModel:
        out_cls = self.Output
        if isinstance(result, dict):
            result = unskip(result)
        if isinstance(result, out_cls):
            data: Any = result
        elif isinstance(result, BaseModel):
            data = result.model_dump()
        elif isinstance(result, dict):
            data = result
        elif len(out_cls.model_fields) == 1:
            data = {next(iter(out_cls.model_fields)): result}
        else:
            raise OperatorError(f"{self.op_name}: forward returned {type(result).__name__}; return "
                                f"{out_cls.__name__}(...) or a dict with {', '.join(out_cls.model_fields)}")
        try:
            return out_cls.model_validate(data)
        except ValidationError as exc:
            raise OperatorError(_describe(self.op_name, "output", exc)) from None

    def skipped(self) -> BaseModel:
        """The output of a skipped call: every field SKIPPED (None once it leaves the network)."""
        return self.Output.model_construct(**dict.fromkeys(self.Output.model_fields, SKIPPED))

    def fields(self, checked: BaseModel) -> dict[str, Any]:
        return {name: getattr(checked, name) for name in type(checked).model_fields} | dict(checked.model_extra or {})

    def invoke(self, values: dict[str, Any]) -> BaseModel:
        """Synchronous forward in this thread (nested operator calls reach the session's loop)."""
        checked = self.validate_input(values)
        with eager_scope(self, self.fields(checked)):
            return self.validate_output(self.forward(**self.fields(checked)))

    async def ainvoke(self, values: dict[str, Any]) -> BaseModel:
        checked = self.validate_input(values)
        fields = self.fields(checked)
        with eager_scope(self, fields):
            if inspect.iscoroutinefunction(self.forward):
                result = await self.forward(**fields)
            elif self.cheap:
                result = self.forward(**fields)
            else:  # to_thread copies the context: the session and eager scope go along
                result = await asyncio.to_thread(self.forward, **fields)
        return self.validate_output(result)

    # -- helpers --------------------------------------------------------------------------------------
    def to_spec(self, path: Any = None, *, name: str | None = None) -> str:
        """The YAML spec of this operator (see ``jit(...).to_spec``)."""
        from ember_compiler.sdk.jit import jit

        return jit(self, name=name).to_spec(path)


class Network(Operator):
    """An operator whose ``forward`` composes other operators: ``jit`` traces into it."""


@contextmanager
def _ensure_session(inputs: dict[str, Any]):
    if engine.CURRENT.get() is not None:
        yield
        return
    loop = engine.engine_loop()
    session = engine.new_session(loop, inputs=inputs)
    token = engine.CURRENT.set(session)
    try:
        yield
    finally:
        engine.CURRENT.reset(token)
        engine.submit(loop, engine.close_session(session))


def _describe(op: str, what: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or what
        problems.append(f"{what} '{where}': {err['msg']}")
    return f"{op}: invalid " + "; ".join(problems)


def _flatten(op: Operator) -> tuple[list[Any], _OpAux]:
    init = op._ember_init
    return [*init.args, *init.kwargs.values()], _OpAux(type(op), len(init.args), tuple(init.kwargs))


def _unflatten(aux: _OpAux, children: list[Any]) -> Operator:
    args, values = children[: aux.n_args], children[aux.n_args:]
    return aux.cls(*args, **dict(zip(aux.names, values, strict=True)))


@dataclass(frozen=True)
class _NetAux:
    cls: type
    names: tuple[str, ...]
    private: dict[str, Any] = field(compare=False, hash=False)

    def paths(self) -> list[str]:
        return [f".{n}" for n in self.names]


def _flatten_network(net: Network) -> tuple[list[Any], _NetAux]:
    public = {k: v for k, v in vars(net).items() if not k.startswith("_")}
    private = {k: v for k, v in vars(net).items() if k.startswith("_") and not k.startswith("_ember_eager")}
    return list(public.values()), _NetAux(type(net), tuple(public), private)


def _unflatten_network(aux: _NetAux, children: list[Any]) -> Network:
    net = object.__new__(aux.cls)  # NOTE: not __init__: the children *are* the built sub-operators
    net.__dict__.update(aux.private)
    net.__dict__.update(zip(aux.names, children, strict=True))
    return net


# NOTE: [Pytrees of operators] A Network's children are its public attributes (its sub-operators and
# settings, like a torch module's), so a tree_map reaches every model of every op it built, whatever
# its constructor took. Any other operator's children are its constructor arguments as given (its
# static configuration, its `init:` in a spec), and rebuilding calls its constructor.
register_pytree_node(Operator, _flatten, _unflatten)
register_pytree_node(Network, _flatten_network, _unflatten_network)

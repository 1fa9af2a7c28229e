"""``jit``: trace an operator into an xcs plan once, then run the plan (parallel dispatch).

The traced spec goes through the compiler's ``lower`` and passes, exactly like a YAML spec, so
``to_spec()`` writes YAML that compiles to the same plan hash. Runs go through the same executor
and runtime as ``ember run``: independent calls run at once, each model call passes its gate.
"""

from __future__ import annotations

import re
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from ember_compiler.compiler.check import load_spec
from ember_compiler.compiler.lower import lower
from ember_compiler.compiler.passes import default_passes, run_passes
from ember_compiler.errors import EmberError
from ember_compiler.ops import registry
from ember_compiler.runtime.usage import Usage
from ember_compiler.sdk import engine
from ember_compiler.sdk.model import Model
from ember_compiler.sdk.operator import Network, Operator, OperatorError, snake
from ember_compiler.sdk.trace import TRACE, Proxy, Trace, returned_ports
from ember_compiler.spec.model import NAME_PATTERN
from ember_compiler.xcs.executor import Executor
from ember_compiler.xcs.plan import Plan
from ember_compiler.xcs.scheduling import Scheduler, get_scheduler


def _model_fields(node: dict[str, Any]) -> tuple[str, ...]:
    """The fields of a traced node that name models (its op's ``model_fields``)."""
    op = registry.get(str(node.get("op")))
    return op.model_fields if op is not None else ()


# -- from a trace to a spec and a plan ------------------------------------------------------------
class _TracedDoc:
    """What ``lower`` needs from a document, for a spec recorded by tracing."""

    path = Path("<trace>")

    def position(self, loc: Any) -> tuple[int, int]:
        return (0, 0)


def spec_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_\-]", "-", text).strip("-") or "network"
    return name if re.match(NAME_PATTERN, name) else "n-" + name


def name_models(nodes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Give every Model in ``nodes`` a binding name, in place; returns the ``models:`` section."""
    found: list[Model] = []
    for node in nodes.values():
        for key in _model_fields(node):
            value = node.get(key)
            for m in value if isinstance(value, list) else [value]:
                if isinstance(m, Model) and m not in found:
                    found.append(m)
    names: dict[Model, str] = {}
    for m in found:
        if m.name is not None:
            clash = next((o for o, n in names.items() if n == m.name), None)
            if clash is not None:
                raise OperatorError(f"two different models are both named '{m.name}': {clash!r} and {m!r}")
            names[m] = m.name
    taken = set(names.values())
    for m in found:
        if m.name is None:
            base = re.sub(r"[^A-Za-z0-9_]", "_", m.provider)
            candidate, k = base, 1
            while candidate in taken:
                k += 1
                candidate = f"{base}_{k}"
            taken.add(candidate)
            names[m] = candidate
    for node in nodes.values():
        for key in _model_fields(node):
            value = node.get(key)
            if isinstance(value, list):
                node[key] = [names[m] for m in value]
            elif isinstance(value, Model):
                node[key] = names[value]
    return {names[m]: m.binding for m in found}


def build(trace: Trace, name: str, inputs: dict[str, Any], outputs: dict[str, str],
          source: str | None = None) -> tuple[dict[str, Any], Plan]:
    """The spec a trace recorded (a plain dict, as YAML would hold it) and its plan."""
    nodes = {k: dict(v) for k, v in trace.nodes.items()}
    models = name_models(nodes)
    spec: dict[str, Any] = {"ember": 1, "name": spec_name(name)}
    if inputs:
        spec["inputs"] = inputs
    if models:
        spec["models"] = models
    spec["nodes"] = nodes
    spec["outputs"] = outputs
    try:
        checked = registry.Spec.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise OperatorError(f"traced network '{name}' is not a valid spec at "
                            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
    plan = run_passes(lower(_TracedDoc(), checked, load_spec=load_spec), enabled=default_passes())  # as compile_spec does
    prefix = str(_TracedDoc.path) + ":"
    fixed = tuple(
        n.replace(source=trace.sources.get(n.id.split("/")[0])) if (n.source or "").startswith(prefix) else n
        for n in plan.nodes
    )
    return spec, plan.replace(nodes=fixed, source=source)


_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", tuple: "array",
          set: "array", dict: "object"}


def spec_type(annotation: Any) -> str:
    """The spec input type of a pydantic field annotation ("string" when nothing fits better)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return spec_type(args[0])
    base = origin or annotation
    if isinstance(base, type) and issubclass(base, BaseModel):
        return "object"
    for cls, name in _TYPES.items():
        if isinstance(base, type) and issubclass(base, cls):
            return name
    return "string"


def input_decls(model: type[BaseModel]) -> dict[str, Any]:
    decls: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        kind = spec_type(field.annotation)
        if field.is_required() and not field.description:
            decls[name] = kind
            continue
        decl: dict[str, Any] = {"type": kind}
        if field.description:
            decl["description"] = field.description
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            decl["default"] = default.model_dump(mode="json") if isinstance(default, BaseModel) else default
        decls[name] = decl
    return decls


# -- tracing an operator --------------------------------------------------------------------------
@dataclass
class Traced:
    spec: dict[str, Any]
    plan: Plan
    operators: dict[str, Operator]  # python node id -> live operator
    portable: bool  # whether the spec can be written as YAML that runs elsewhere
    input_model: type[BaseModel]
    output_model: type[BaseModel]


def builtin_input_model(op: Any) -> type[BaseModel]:
    """Inputs of a lone built-in op: its value fields and the names its templates read."""
    names = list(op.value_fields) + sorted(op.template_variables())
    for field in op.template_fields:
        source = op.init_args.kwargs.get(field)
        if isinstance(source, str):
            names += re.findall(r"\binputs\.([A-Za-z0-9_]+)", source)
    return create_model(f"{op.op_name}Input", **{n: (Any, ...) for n in dict.fromkeys(names)})


def trace_operator(op: Operator, name: str | None = None) -> Traced:
    """Trace ``op`` with proxies for its inputs (see ``ember_compiler.sdk.trace``)."""
    if hasattr(op, "compiled_plan"):  # a loaded spec is already a plan
        return Traced(op.spec_dict(), op.compiled_plan, {}, True, op.Input, op.Output)
    from ember_compiler.sdk.ops import BuiltinOp

    in_model = builtin_input_model(op) if isinstance(op, BuiltinOp) else op.Input
    trace = Trace(op if isinstance(op, Network) else None)
    proxies = {n: Proxy("inputs", n) for n in in_model.model_fields}
    token = TRACE.set(trace)
    try:
        if isinstance(op, Network):
            returned = returned_ports(op, op.forward(**proxies))
        else:
            result = trace.call(op, (), proxies)
            ports = op.ports() if hasattr(op, "ports") else tuple(op.Output.model_fields)
            returned = {p: getattr(result, p) for p in ports}
    finally:
        TRACE.reset(token)
    outputs: dict[str, str] = {}
    for key, value in returned.items():
        if not isinstance(value, Proxy):
            raise OperatorError(f"{op.op_name}.forward: output '{key}' is {type(value).__name__} {value!r}; an "
                                "output must be an input or an operator's output (a spec output is a reference)")
        outputs[key] = value.ref
    file = getattr(getattr(type(op), "forward", None), "__code__", None)
    spec, plan = build(trace, name or type(op).__name__, input_decls(in_model), outputs,
                       source=file.co_filename if file else None)
    return Traced(spec, plan, {k: v for k, v in trace.operators.items()}, trace.portable, in_model, op.Output)


def eager_plan(op: Any, node_id: str, arg_names: tuple[str, ...], network_inputs: tuple[str, ...],
               scheduler: Scheduler) -> Executor:
    """The one-node plan an eager call of a built-in op runs (cached per call shape)."""
    cache = op.__dict__.setdefault("_ember_eager", {})
    key = (node_id, arg_names, network_inputs, scheduler.name)
    if key not in cache:
        trace = Trace(None)
        node = op.spec_node({k: Proxy("inputs", f"_arg_{k}") for k in arg_names}, trace,
                            known=set(network_inputs))
        trace.nodes[node_id] = node
        inputs = {**dict.fromkeys(network_inputs, "string"), **{f"_arg_{k}": "string" for k in arg_names}}
        outputs = {p: f"${{{node_id}.{p}}}" for p in op.ports()}
        _, plan = build(trace, snake(op.op_name), inputs, outputs)
        cache[key] = Executor(plan, scheduler)
    return cache[key]


# -- running a plan in a session ----------------------------------------------------------------------
async def execute_plan(executor: Executor, values: dict[str, Any], session: engine.Session,
                       example_id: str | None = None, example: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = dict(session.meta)
    if isinstance(values.get("choices"), list):
        meta["choices"] = values["choices"]
    if example_id is not None:
        meta["example_id"] = example_id
    if example:
        meta["truth"] = example.get("answer", meta.get("truth"))
        meta["sim"] = example.get("sim", meta.get("sim"))
    session.prepare(executor.plan)
    outputs, _ = await executor.execute(session.sink, values, meta, session.row)
    return outputs


@dataclass
class RunOutput:
    """One run: the validated output, the model usage it took and its wall time."""

    output: Any
    usage: Usage
    wall_s: float


class Jitted:
    """An operator traced into a plan (``jit(op)``): call it like the operator.

    Attributes: ``plan`` (the xcs plan), ``spec`` (the traced spec as a dict), ``to_spec()``.
    """

    def __init__(self, op: Operator, *, scheduler: Scheduler | str | None = None, name: str | None = None) -> None:
        if not isinstance(op, Operator):
            raise EmberError(f"jit expects an Operator, got {type(op).__name__}")
        self.op = op
        self.scheduler = scheduler
        self.name = name
        self._traced: Traced | None = None
        self._executors: dict[str, Executor] = {}

    @property
    def traced(self) -> Traced:
        if self._traced is None:
            self._traced = trace_operator(self.op, self.name)
        return self._traced

    @property
    def plan(self) -> Plan:
        return self.traced.plan

    @property
    def spec(self) -> dict[str, Any]:
        return self.traced.spec

    def executor(self, scheduler: Scheduler) -> Executor:
        if scheduler.name not in self._executors:
            self._executors[scheduler.name] = Executor(self.plan, scheduler, operators=self.traced.operators)
        return self._executors[scheduler.name]

    def validate(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        traced = self.traced
        values = self.op.input_values(args, kwargs) if traced.input_model is self.op.Input else dict(kwargs)
        try:
            checked = traced.input_model.model_validate(values)
        except ValidationError as exc:
            from ember_compiler.sdk.operator import _describe

            raise OperatorError(_describe(self.op.op_name, "input", exc)) from None
        return {name: getattr(checked, name) for name in traced.input_model.model_fields}

    def output(self, outputs: dict[str, Any]) -> Any:
        try:
            return self.traced.output_model.model_validate(outputs)
        except ValidationError as exc:
            from ember_compiler.sdk.operator import _describe

            raise OperatorError(_describe(self.op.op_name, "output", exc)) from None

    async def aexecute(self, values: dict[str, Any], session: engine.Session, example_id: str | None = None,
                       example: dict[str, Any] | None = None) -> Any:
        executor = self.executor(session.scheduler)
        return self.output(await execute_plan(executor, values, session, example_id, example))

    def _session_args(self, seed: int | None, example: dict | None, values: dict) -> dict[str, Any]:
        if seed is None and example is None and self.scheduler is None:
            return {}
        return {"seed": seed or 0, "example": example, "scheduler": self.scheduler, "inputs": values}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs).output

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        return (await self.arun(*args, **kwargs)).output

    def run(self, *args: Any, seed: int | None = None, example: dict[str, Any] | None = None,
            **kwargs: Any) -> RunOutput:
        """Run once; ``seed`` and ``example`` (e.g. ``{"answer": "B"}``, sim ground truth) as in ``ember run``."""
        values = self.validate(args, kwargs)
        session_args = self._session_args(seed, example, values)
        return engine.run_sync(lambda: self._timed(values), **session_args)

    async def arun(self, *args: Any, seed: int | None = None, example: dict[str, Any] | None = None,
                   **kwargs: Any) -> RunOutput:
        values = self.validate(args, kwargs)
        return await engine.run_async(lambda: self._timed(values), **self._session_args(seed, example, values))

    async def _timed(self, values: dict[str, Any]) -> RunOutput:
        session = engine.CURRENT.get()
        before = session.usage.copy()
        start = time.perf_counter()
        output = await self.aexecute(values, session)
        return RunOutput(output, session.usage - before, time.perf_counter() - start)

    def to_spec(self, path: str | Path | None = None) -> str:
        """The traced network as YAML; with ``path``, also written there (sub-spec paths made relative).

        Raises:
            OperatorError: the network holds something YAML cannot carry (a python operator defined
                inside a function, constructor arguments that are not JSON or Models).
        """
        from ember_compiler.sdk.yaml_out import spec_yaml

        if not self.traced.portable:
            raise OperatorError(f"{self.op.op_name} cannot be written as a spec: a python operator in it is "
                                "defined inside a function or has constructor arguments that are not JSON")
        text = spec_yaml(self.spec, Path(path).resolve().parent if path is not None else None)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def jit(op: Operator, *, scheduler: Scheduler | str | None = None, name: str | None = None) -> Jitted:
    """Trace ``op`` into an xcs plan (on first use) and run that plan when called.

    Args:
        op: a ``Network`` (traced into), a built-in op, a custom operator (one ``python`` node) or a
            loaded spec.
        scheduler: a scheduling policy or its name (``parallel``, ``sequential``, ``cheapest-first``,
            or one registered in ``ember.schedulers``).
        name: the plan's name (default: the operator's class name).

    Raises:
        NotTraceable: the forward branches on, iterates over or formats a model output.
    """
    get_scheduler(scheduler)  # an unknown name fails here, not at the first call
    return Jitted(op, scheduler=scheduler, name=name)

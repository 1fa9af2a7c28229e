"""The built-in ops as Python operators: ``ops.Ensemble(model=..., n=5, prompt=...)``, ``ops.Vote()``…

Every class here is generated from the op registry (each op's ``SdkDef`` in ``ember_compiler/ops``):
constructor arguments are the op's spec fields (DESIGN §2), with ``Model`` objects (or binding
mappings) where a spec names a binding. Calling an op runs it eagerly (one small plan through the
runtime); inside a traced network the same call emits the spec node instead. Template ops
(``Generate``, ``Ensemble``, and ``Judge``/``Select``/``Verify`` with a custom ``prompt``) take their
template variables as keyword arguments — a spec's ``with:``:

    ask = ops.Generate(model=Model(provider="sim"), prompt="Question: {{ question }}")
    ask(question="What is 7 * 6?").answer
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, create_model

from ember_compiler.ops.base import REQUIRED, OpDef
from ember_compiler.ops.registry import OPS, plan_op
from ember_compiler.sdk import engine
from ember_compiler.sdk.model import as_model
from ember_compiler.sdk.operator import EAGER, Operator, OperatorError, eager_node_id
from ember_compiler.templates import variables


class BuiltinOp(Operator):
    """Base of the built-in ops: eager calls run a one-node plan; traced calls emit the node."""

    op: ClassVar[str]
    value_fields: ClassVar[tuple[str, ...]] = ()  # Input fields that are spec fields; the rest go to with:
    optional_fields: ClassVar[frozenset[str]] = frozenset()  # value fields a call may leave out
    template_fields: ClassVar[tuple[str, ...]] = ()

    def runs_on_loop(self) -> bool:
        return True

    def ports(self) -> tuple[str, ...]:
        return tuple(OPS[self.op].ports)

    def static_fields(self) -> dict[str, Any]:
        """The spec fields this op was built with (Models where the spec names a binding)."""
        out: dict[str, Any] = {}
        for key, value in self.init_args.kwargs.items():
            if value is None:
                continue
            if key in OPS[self.op].model_fields:
                value = [as_model(v, self.op_name, key) for v in value] if isinstance(value, list | tuple) else \
                    as_model(value, self.op_name, key)
            out[key] = value
        return out

    def template_variables(self) -> set[str]:
        names: set[str] = set()
        for field in self.template_fields:
            source = self.init_args.kwargs.get(field)
            if isinstance(source, str):
                names |= variables(source)
        return names - {"inputs", "params"}

    def spec_node(self, values: dict[str, Any], tracer: Any, known: set[str] = frozenset()) -> dict[str, Any]:
        """The spec node of one call (values already traced: proxies or literals)."""
        node: dict[str, Any] = {"op": self.op, **self.static_fields()}
        bound: dict[str, Any] = {}
        for key, value in values.items():
            if value is None and key in self.value_fields and key in self.optional_fields:
                continue  # an optional input not given: the node is the spec without the field
            target = node if key in self.value_fields else bound
            target[key] = tracer.value(value, f"{self.op_name} input '{key}'")
        missing = sorted(self.template_variables() - bound.keys() - set(known) - set(tracer.nodes))
        if missing:
            raise OperatorError(f"{self.op_name}: its template reads '{missing[0]}', which this call does not "
                                f"pass (call it with {missing[0]}=...)")
        if bound:
            node["with"] = bound
        return node

    async def ainvoke(self, values: dict[str, Any]) -> BaseModel:
        from ember_compiler.sdk.jit import eager_plan

        checked = self.validate_input(values)
        fields = self.fields(checked)
        session = engine.CURRENT.get()
        scope = EAGER.get()
        network_inputs = dict(scope.inputs) if scope is not None else {}
        executor = eager_plan(self, eager_node_id(self), tuple(fields), tuple(network_inputs), session.scheduler)
        inputs = {**network_inputs, **{f"_arg_{k}": v for k, v in fields.items()}}
        session.prepare(executor.plan)
        outputs, _ = await executor.execute(session.sink, inputs, dict(session.meta), session.row)
        return self.validate_output(outputs)

    def forward(self, **inputs: Any) -> Any:  # never called: ainvoke runs the op's plan
        raise NotImplementedError


def _input_model(op: OpDef) -> type[BaseModel]:
    """Value fields are required inputs; a template op also takes its variables by name."""
    config = ConfigDict(extra="allow") if op.template_fields else ConfigDict()
    spec_fields = op.node.model_fields
    fields: dict[str, Any] = {name: (Any, ... if spec_fields[name].is_required() else None)  # critiques=
                              for name in op.sdk.value_fields}
    return create_model(f"{op.sdk.name}Input", __config__=config, **fields)


def _output_model(op: OpDef) -> type[BaseModel]:
    fields: dict[str, Any] = {port: (kind | None, None) for port, kind in op.ports.items()}
    return create_model(f"{op.sdk.name}Output", **fields)


def _init(op: OpDef) -> Any:
    sdk = op.sdk
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=inspect.Parameter.empty if v is REQUIRED else v)
        for k, v in sdk.init.items()
    ]
    signature = inspect.Signature(params)

    def __init__(self: BuiltinOp, **kwargs: Any) -> None:
        bound = signature.bind(self, **kwargs)
        bound.apply_defaults()
        args = {k: v for k, v in bound.arguments.items() if k != "self"}
        problem = sdk.validate(args) if sdk.validate is not None else None
        if problem:
            raise OperatorError(f"{sdk.name}: {problem}")
        for key, value in args.items():
            if key in op.model_fields and value is not None:
                value = [as_model(v, sdk.name, key) for v in value] if isinstance(value, list) \
                    else as_model(value, sdk.name, key) if key != "model" else as_model(value, sdk.name)
            setattr(self, key, value)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


def _operator_class(op: OpDef) -> type[BuiltinOp]:
    own = plan_op(op.name)
    return type(op.sdk.name, (BuiltinOp,), {
        "__doc__": op.sdk.doc, "__module__": __name__, "__qualname__": op.sdk.name, "__init__": _init(op),
        "op": op.name, "value_fields": op.sdk.value_fields, "template_fields": op.template_fields,
        "optional_fields": frozenset(f for f in op.sdk.value_fields if not op.node.model_fields[f].is_required()),
        "null_tolerant": bool(own is not None and own.null_tolerant),
        "Input": _input_model(op), "Output": _output_model(op),
    })


CLASSES: dict[str, type[BuiltinOp]] = {op.sdk.name: _operator_class(op) for op in OPS.values() if op.sdk is not None}
globals().update(CLASSES)

__all__ = ["BuiltinOp", *sorted(CLASSES)]


def __getattr__(name: str) -> Any:
    """The class of an op registered after this module was imported (``register_op`` at run time)."""
    for op in list(OPS.values()):
        if op.sdk is not None and op.sdk.name == name:
            CLASSES[name] = _operator_class(op)
            return CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

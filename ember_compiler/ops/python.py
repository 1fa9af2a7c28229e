"""``python``: a custom Python operator (``call: package.module:Name``); its ports are its Output fields.

The operator is imported only when running (or by ``ember validate --import``): without it, ``call:``
is checked for its form, ``init:`` for being static, and references to the node's ports are accepted
as they are. The plan node (``python operator``) is run by the node runner the SDK registers.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from pydantic import Field, TypeAdapter
from pydantic import ValidationError as PydanticError

from ..spec.diagnostics import did_you_mean
from ..spec.model import Name, NodeBase
from ..spec.refs import find_references, whole_reference
from .base import Effects, OpDef, PlanOp
from .operators import OperatorNotFound, call_problem, resolve_operator

CALL_PATTERN = r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*|[A-Za-z0-9_][A-Za-z0-9_.\-]*)$"
# a value of each spec input type, to ask an operator's Input whether it accepts that type
_SAMPLES = {"string": "text", "number": 0.5, "integer": 1, "boolean": True, "array": [], "object": {}}


class PythonNode(NodeBase):
    """A custom operator (an `ember_compiler.Operator` subclass); its ports are its Output fields."""

    op: Literal["python"]
    call: str = Field(..., pattern=CALL_PATTERN, description=(
        "package.module:Name of an Operator class, or a short name registered in the ember.operators "
        "entry-point group. Imported only when running (or by `ember validate --import`)."))
    with_: dict[Name, Any] = Field(default_factory=dict, alias="with", description="The operator's inputs.")
    init: dict[Name, Any] = Field(default_factory=dict, description="Constructor arguments (static).")


def lower(ctx: Any, node: PythonNode) -> list[Any]:
    inputs = {name: ctx.value(value) for name, value in node.with_.items()}
    params = {"call": node.call, "init": ctx.static_tree(node.init)}
    return [ctx.make("python", "operator", inputs, params, outputs=())]


# -- checks -----------------------------------------------------------------------------------------
def operator(ck: Any, nid: str, node: PythonNode, base: tuple) -> type | None:
    """The imported operator class, when the session imports operators (reported once per node)."""
    if not ck.imports_operators or call_problem(node.call):
        return None
    cache = ck.memo.setdefault("operators", {})
    if base not in cache:
        try:
            cache[base] = resolve_operator(node.call, near=ck.folder)
        except OperatorNotFound as exc:
            cache[base] = None
            ck.error((*base, "call"), "E308", str(exc))
    return cache[base]


def prepare(ck: Any, nid: str, node: PythonNode) -> None:
    cls = operator(ck, nid, node, ("nodes", nid))
    if cls is not None:
        ck.declare_ports(nid, tuple(cls.Output.model_fields))


def check(ck: Any, nid: str, node: PythonNode, base: tuple) -> None:
    problem = call_problem(node.call)
    if problem:
        ck.error((*base, "call"), "E307", problem,
                 "e.g. call: mypackage.operators:Classify (the module must be importable when running)")
    _static_init(ck, node.init, (*base, "init"))
    cls = operator(ck, nid, node, base)
    if cls is None:
        return
    fields = cls.Input.model_fields
    extra_ok = cls.Input.model_config.get("extra") == "allow"
    for key, value in node.with_.items():
        loc = (*base, "with", key)
        if key not in fields:
            if not extra_ok:
                ck.error(loc, "E309", f"'{key}' is not an input of operator {cls.__name__}",
                         did_you_mean(key, fields) or f"inputs: {', '.join(fields) or 'none'}", key=True)
            continue
        _value_type(ck, loc, cls, key, fields[key].annotation, value)
    for name, field in fields.items():
        if field.is_required() and name not in node.with_:
            ck.error((*base, "with") if node.with_ else base, "E309",
                     f"operator {cls.__name__} needs input '{name}': bind it in with: of node '{nid}'", key=True)
    try:
        inspect.signature(cls).bind(**node.init)
    except TypeError as exc:
        ck.error((*base, "init") if node.init else base, "E310",
                 f"init: does not match {cls.__name__}'s constructor: {exc}", key=not node.init)


def _value_type(ck: Any, loc: tuple, cls: type, key: str, annotation: Any, value: Any) -> None:
    ref = whole_reference(value)
    if ref is not None:
        decl = ck.view.inputs.get(ref.tail) if ref.head == "inputs" else None
        if decl is None:
            return  # a node's port or a param: its type is not known statically
        value, what = _SAMPLES[decl.type], f"input '{ref.tail}' ({decl.type})"
    elif _has_refs(value):
        return
    else:
        what = "this value"
    try:
        TypeAdapter(annotation).validate_python(value)
    except PydanticError as exc:
        reason = exc.errors()[0]["msg"]
        ck.error(loc, "E309", f"{what} does not fit {cls.__name__}.Input.{key}: {reason}")
    except Exception:  # an annotation pydantic cannot build a validator for: nothing to check
        return


def _has_refs(value: Any) -> bool:
    if isinstance(value, str):
        return bool(find_references(value))
    if isinstance(value, list):
        return any(_has_refs(v) for v in value)
    if isinstance(value, dict):
        return any(_has_refs(v) for v in value.values())
    return False


def _static_init(ck: Any, value: Any, loc: tuple) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _static_init(ck, v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _static_init(ck, v, (*loc, i))
    elif isinstance(value, str):
        for ref in find_references(value):
            if ref.head != "params" or whole_reference(value) is None:
                ck.error(loc, "E310", f"init: values are static: '{ref.text}' is not allowed here",
                         "use a literal or one ${params.NAME}; pass run-time values through with:")
                return


OP = OpDef(
    name="python",
    summary="A custom Python operator (call: package.module:Name).",
    node=PythonNode,
    ports={},
    lower=lower,
    # the operator's own calls go through the run's runtime: they are counted as it makes them
    plan_ops=(PlanOp("operator", "python", None, params=("call",), effects=Effects(sampled=True)),),
    check=check,
    prepare=prepare,
    ports_declared_by_node=True,
    sdk_note="subclass ember_compiler.Operator: its instances are python nodes when traced",
)

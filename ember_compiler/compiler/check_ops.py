"""Semantic rules of the `python` and `map` ops (codes in `spec/codes.py`), called by the `Checker`.

A `python` node's operator is imported only when the session asks for it (`ember validate
--import`): without it, `call:` is checked for its form, `init:` for being static, and references to
the node's ports are accepted as they are (its ports are unknown until the operator is imported).
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError

from ember_compiler.compiler.operators import OperatorNotFound, call_problem, resolve_operator
from ember_compiler.compiler.refs import find_references, whole_reference
from ember_compiler.spec.diagnostics import did_you_mean

# a value of each spec input type, to ask an operator's Input whether it accepts that type
_SAMPLES = {"string": "text", "number": 0.5, "integer": 1, "boolean": True, "array": [], "object": {}}


def prepare(ck: Any, nid: str, node: Any) -> None:
    """Before references are checked: a map's sub-spec, an imported operator's ports."""
    if node.op == "map":
        if node.spec is not None and node.node is None:
            ck._network(nid, node, bound=(node.as_,))
        return
    cls = _operator(ck, nid, node, ("nodes", nid))
    if cls is not None:
        ck.py_ports[nid] = tuple(cls.Output.model_fields)


def check(ck: Any, nid: str, node: Any, base: tuple) -> None:
    if node.op == "python":
        _python(ck, nid, node, base)
    else:
        _map(ck, nid, node, base)


# -- python -----------------------------------------------------------------------------------------
def _operator(ck: Any, nid: str, node: Any, base: tuple) -> type | None:
    """The imported operator class, when the session imports operators (reported once per node)."""
    if not getattr(ck.session, "import_operators", False) or call_problem(node.call):
        return None
    cache = ck.__dict__.setdefault("_operators", {})
    if base not in cache:
        try:
            cache[base] = resolve_operator(node.call, near=ck.doc.path.resolve().parent)
        except OperatorNotFound as exc:
            cache[base] = None
            ck.error((*base, "call"), "E308", str(exc))
    return cache[base]


def _python(ck: Any, nid: str, node: Any, base: tuple) -> None:
    problem = call_problem(node.call)
    if problem:
        ck.error((*base, "call"), "E307", problem,
                 "e.g. call: mypackage.operators:Classify (the module must be importable when running)")
    _static_init(ck, node.init, (*base, "init"))
    cls = _operator(ck, nid, node, base)
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


# -- map --------------------------------------------------------------------------------------------
def _map(ck: Any, nid: str, node: Any, base: tuple) -> None:
    if (node.spec is None) == (node.node is None):
        both = "both" if node.spec is not None else "neither"
        ck.error(base, "E311", f"map node '{nid}' needs exactly one of 'spec' or 'node' (it has {both})",
                 "spec: sub.yaml runs a sub-spec per item; node: {op: ...} runs one inline node per item",
                 key=True)
        return
    if node.spec is not None:
        sub = ck.subs.get(nid)
        inputs = sub.view.inputs if sub is not None and sub.view is not None else None
        if inputs is not None and node.as_ not in inputs:
            ck.error((*base, "as") if "as_" in node.model_fields_set else base, "E312",
                     f"the item name '{node.as_}' is not an input of sub-spec '{node.spec}'",
                     did_you_mean(node.as_, inputs) or f"inputs: {', '.join(inputs) or 'none'}")
        return
    inner = node.node
    if inner.op in ("network", "map"):
        ck.error((*base, "node", "op"), "E311", f"an inline map node cannot be a {inner.op}",
                 "put it in a sub-spec and use spec: instead")
        return
    if node.with_:
        ck.error((*base, "with"), "E311", "with: binds sub-spec inputs; an inline node reads outer values "
                                          "directly", key=True)
    saved = ck.view.inputs
    ck.view.inputs = {**saved, node.as_: None}  # the item is an input inside the inline node
    try:
        ck._node(nid, inner, base=(*base, "node"))
    finally:
        ck.view.inputs = saved

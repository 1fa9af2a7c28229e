"""Semantic rules of a spec (DESIGN §2), split by layer: the graph (``check_refs.py``: references,
templates, `when:`, cycles), fields (``check_fields.py``: static numbers, regexes, models,
providers), each op's own rules (``OpDef.check``/``prepare`` in ``ember_compiler/ops``) and, here, the
``Checker`` that runs them and loads sub-specs.

Structure is already checked (or salvaged, see `View.salvage`) when these run, so every rule reads
validated pydantic objects; positions come from the `Document`. Codes are defined in `spec/codes.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError

from ember_compiler.compiler.check_fields import FieldChecks, _listing
from ember_compiler.compiler.check_refs import RefChecks
from ember_compiler.ops import registry
from ember_compiler.ops.registry import OPS
from ember_compiler.spec.diagnostics import Diagnostic, did_you_mean
from ember_compiler.spec.loader import Document, subspec_path
from ember_compiler.spec.model import InputDecl, ModelBinding


@dataclass
class View:
    """The parts of a spec the checks read; None marks a declared but malformed entry."""

    inputs: dict[str, InputDecl | None] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    models: dict[str, ModelBinding | None] = field(default_factory=dict)
    nodes: dict[str, Any] = field(default_factory=dict)
    ops: dict[str, str | None] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: Any) -> View:
        return cls(dict(spec.input_decls()), dict(spec.params), dict(spec.models), dict(spec.nodes),
                   {k: n.op for k, n in spec.nodes.items()}, dict(spec.outputs))

    @classmethod
    def salvage(cls, data: Any) -> View:
        """What survives of a structurally invalid spec, so semantic errors are reported too."""
        view = cls()
        if not isinstance(data, dict):
            return view
        for name, value in _section(data, "inputs"):
            decl = value if isinstance(value, dict) else {"type": value}
            view.inputs[name] = _try(lambda d=decl: InputDecl.model_validate(d))
        view.params = dict(_section(data, "params"))
        for name, value in _section(data, "models"):
            view.models[name] = _try(lambda v=value: ModelBinding.model_validate(v))
        for name, value in _section(data, "nodes"):
            view.nodes[name] = _try(lambda v=value: _node_adapter().validate_python(v))
            op = value.get("op") if isinstance(value, dict) else None
            view.ops[name] = op if isinstance(op, str) and op in OPS else None
        view.outputs = {k: v for k, v in _section(data, "outputs") if isinstance(v, str)}
        return view


def _node_adapter() -> TypeAdapter:
    node = registry.Node
    if _ADAPTERS.get("node") is not node:  # rebuilt when a plugin registers an op
        _ADAPTERS.clear()
        _ADAPTERS["node"], _ADAPTERS["adapter"] = node, TypeAdapter(node)
    return _ADAPTERS["adapter"]


_ADAPTERS: dict[str, Any] = {}


def _section(data: dict, key: str) -> list[tuple[str, Any]]:
    value = data.get(key)
    return [(str(k), v) for k, v in value.items()] if isinstance(value, dict) else []


def _try(make: Any) -> Any:
    try:
        return make()
    except (PydanticError, TypeError, ValueError):
        return None


class Loader(Protocol):
    """Loads a sub-spec (the session in `check.py`); returns an object with `.view` and `.diags`."""

    def load(self, path: Path, *, stack: tuple[Path, ...]) -> Any: ...


# -- the checker ------------------------------------------------------------------------------------
class Checker(RefChecks, FieldChecks):
    """All semantic rules over one spec; `run()` returns its diagnostics (and its sub-specs')."""

    def __init__(self, session: Loader, doc: Document, view: View, stack: tuple[Path, ...],
                 lint: bool = True) -> None:
        self.session, self.doc, self.view, self.stack, self.lint = session, doc, view, stack, lint
        self.diags: list[Diagnostic] = []
        self.edges: dict[str, dict[str, tuple[int, int]]] = {n: {} for n in view.nodes}
        self.roots: set[str] = set()
        self.subs: dict[str, Any] = {}
        self.py_ports: dict[str, tuple[str, ...]] = {}  # python node -> its operator's Output fields
        self.memo: dict[str, Any] = {}  # what op checks keep per spec (imported operators)

    def run(self) -> list[Diagnostic]:
        for nid in self.view.nodes:
            if nid in ("inputs", "params"):
                self.error(("nodes", nid), "E112", f"'{nid}' is reserved and cannot name a node", key=True)
        for nid, node in self.view.nodes.items():
            info = OPS.get(node.op) if node is not None else None
            if info is not None and info.prepare is not None:
                info.prepare(self, nid, node)  # sub-specs, ports of imported operators
        for nid, node in self.view.nodes.items():
            if node is not None:
                self._node(nid, node)
        self._models()
        self._inputs()
        self._outputs()
        self._cycles()
        self._deprecated()
        self._search()
        if self.lint and not any(d.severity == "error" for d in self.diags):
            self._unused()
        return self.diags

    def error(self, loc: tuple, code: str, message: str, hint: str | None = None, key: bool = False) -> None:
        self.diags.append(self.doc.diag(loc, code, message, hint, key=key))

    # -- what op checks use (``CheckCtx``) -------------------------------------------------------
    @property
    def imports_operators(self) -> bool:
        return bool(getattr(self.session, "import_operators", False))

    @property
    def folder(self) -> Path:
        return self.doc.path.resolve().parent

    def declare_ports(self, nid: str, ports: tuple[str, ...]) -> None:
        self.py_ports[nid] = ports

    def subspec_inputs(self, nid: str) -> dict[str, Any] | None:
        sub = self.subs.get(nid)
        return sub.view.inputs if sub is not None and sub.view is not None else None

    def check_inline(self, nid: str, inner: Any, base: tuple, item: str) -> None:
        """A map's inline node, where the item is one more input."""
        saved = self.view.inputs
        self.view.inputs = {**saved, item: None}
        try:
            self._node(nid, inner, base=base)
        finally:
            self.view.inputs = saved

    def error_at(self, pos: tuple[int, int], code: str, message: str, hint: str | None = None) -> None:
        self.diags.append(self.doc.diag_at(pos, code, message, hint))

    # -- nodes -------------------------------------------------------------------------------------
    def _node(self, nid: str, node: Any, base: tuple | None = None) -> None:
        info = OPS.get(node.op)
        base = base or ("nodes", nid)
        if info is None:  # a node model without a registered op: references only
            self._scan(nid, base, node.model_dump(by_alias=True))
            return
        local = tuple(node.with_) if info.template_fields else ()  # `with:` binds template variables
        for name, value in node.model_dump(by_alias=True).items():
            loc = (*base, name)
            if value is None or name in ("op", "description", "when", "spec", "node", "call", "as"):
                continue
            if name in info.model_fields:
                self._model_names(nid, loc, value)
            elif name in info.static_fields:
                if isinstance(value, str):
                    self._param_number(loc, value, "integer", 1, None, "E302")
            elif name == "extract":
                self._regex(loc, value)
            else:
                if name in info.template_fields and isinstance(value, str):
                    self._template(nid, loc, value, local)
                self._scan(nid, loc, value)
        self._when(nid, (*base, "when"), node.when)
        if info.check is not None:
            info.check(self, nid, node, base)

    def subspec(self, nid: str, node: Any, bound: tuple[str, ...] = ()) -> None:
        """A sub-spec (`network`, or `map` with `spec:`); `bound` names inputs bound otherwise."""
        loc = ("nodes", nid, "spec")
        try:
            target = subspec_path(self.doc, node.spec)
            key = target.resolve()
            found = target.is_file()
        except (OSError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.error(loc, "E304", f"sub-spec path {node.spec[:60]!r} is not usable: {reason}")
            return
        if key in self.stack:
            chain = [p.name for p in self.stack[self.stack.index(key):]] + [key.name]
            self.error(loc, "E304", "recursive include: " + " -> ".join(chain))
            return
        if not found:
            self.error(loc, "E304", f"sub-spec '{node.spec}' not found (looked for {target})")
            return
        sub = self.session.load(target, stack=self.stack)
        self.subs[nid] = sub
        self.diags += sub.diags
        errors = sum(d.severity == "error" for d in sub.diags)
        if errors:
            self.error(loc, "E304", f"sub-spec '{node.spec}' is invalid ({errors} error{'s' * (errors > 1)} in {target})")
        if sub.view is None:
            return
        inputs = sub.view.inputs
        for key_name in node.with_:
            if key_name not in inputs:
                self.error(("nodes", nid, "with", key_name), "E305",
                           f"'{key_name}' is not an input of sub-spec '{node.spec}'",
                           did_you_mean(key_name, inputs) or _listing("inputs", inputs), key=True)
        for name, decl in inputs.items():
            if decl is not None and "default" not in decl.model_fields_set and name not in node.with_ \
                    and name not in bound:
                where = ("nodes", nid, "with") if "with" in node.model_fields_set or node.with_ else ("nodes", nid)
                self.error(where, "E306", f"sub-spec input '{name}' has no default: bind it in with: of node '{nid}'",
                           key=True)

    # -- graph -------------------------------------------------------------------------------------

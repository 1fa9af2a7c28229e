"""Semantic rules of a spec (DESIGN §2): references, templates, `when:`, op rules, models, networks.

Structure is already checked (or salvaged, see `View.salvage`) when these run, so every rule reads
validated pydantic objects; positions come from the `Document`. Codes are defined in `spec/codes.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jinja2 import TemplateSyntaxError
from jinja2 import nodes as jn
from jinja2.meta import find_undeclared_variables
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError

from ember_compiler import templates
from ember_compiler.ops import registry
from ember_compiler.ops.registry import OPS
from ember_compiler.providers.registry import known_providers
from ember_compiler.spec.diagnostics import Diagnostic, did_you_mean
from ember_compiler.spec.loader import Document, describe, subspec_path
from ember_compiler.spec.model import InputDecl, ModelBinding
from ember_compiler.spec.refs import REF_RE, Reference, find_references, whole_reference

_REF_FORMS = "${inputs.NAME}, ${params.NAME} or ${NODE.PORT}"
# model-binding fields that may be `${params.X}`: (kind, minimum, maximum)
_BINDING_NUMBERS = {"temperature": ("number", 0, None), "max_tokens": ("integer", 1, None),
                    "top_p": ("number", 0, 1), "accuracy": ("number", 0, 1), "latency_ms": ("number", 0, None)}
_INPUT_TYPES = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
                "array": (list,), "object": (dict,)}




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
class Checker:
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

    def _scan(self, nid: str, loc: tuple, value: Any) -> None:
        if isinstance(value, str):
            self._string_refs(nid, loc, value)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._scan(nid, (*loc, i), item)
        elif isinstance(value, dict):
            for k, item in value.items():
                self._scan(nid, (*loc, k), item)

    def _string_refs(self, nid: str | None, loc: tuple, text: str) -> None:
        starts = {m.start() for m in REF_RE.finditer(text)}
        for m in re.finditer(r"\$\{", text):
            if m.start() not in starts:
                snippet = text[m.start() : m.start() + 24].split("\n")[0]
                self.error_at(self.doc.string_position(loc, m.start(), "${"), "E206",
                              f"malformed reference '{snippet}': expected {_REF_FORMS}")
        for ref in find_references(text):
            self.reference(nid, ref, self.doc.string_position(loc, ref.start, ref.text))

    def reference(self, nid: str | None, ref: Reference, pos: tuple[int, int],
                  node_code: str = "E201", port_code: str = "E202") -> None:
        """Check one `${...}`; `nid` is the node it appears in (None: in `outputs`)."""
        head, tail = ref.head, ref.tail
        if not head or not tail or "." in tail:
            hint = None
            if head in self.view.nodes and not tail:
                hint = f"name a port, e.g. ${{{head}.{(self.ports(head) or ('PORT',))[0]}}}"
            self.error_at(pos, "E206", f"malformed reference '{ref.text}': expected {_REF_FORMS}", hint)
        elif head == "inputs":
            self._name_in(pos, tail, self.view.inputs, "E203", "input", "inputs")
        elif head == "params":
            self._name_in(pos, tail, self.view.params, "E204", "param", "params")
        elif head not in self.view.nodes:
            hint = self._namespace_hint(head, as_ref=True) or did_you_mean(head, [*self.view.nodes, "inputs", "params"])
            self.error_at(pos, node_code, f"unknown node '{head}' in reference '{ref.text}'",
                          hint or _listing("nodes", self.view.nodes))
        else:
            self.depends(nid, head, pos)
            self.port(head, tail, pos, port_code)

    def _name_in(self, pos: tuple[int, int], name: str, names: Any, code: str, kind: str, section: str) -> None:
        if name not in names:
            self.error_at(pos, code, f"unknown {kind} '{name}'",
                          did_you_mean(name, names) or _listing(section, names))

    def port(self, node_id: str, port: str, pos: tuple[int, int], code: str = "E202") -> None:
        ports = self.ports(node_id)
        if ports is not None and port not in ports:
            op = self.view.ops.get(node_id)
            self.error_at(pos, code, f"node '{node_id}' ({op}) has no output port '{port}'",
                          did_you_mean(port, ports) or f"ports: {', '.join(ports) or 'none'}")

    def ports(self, node_id: str) -> tuple[str, ...] | None:
        op = self.view.ops.get(node_id)
        if op == "python":  # known once imported (`ember validate --import`); until then any port
            return self.py_ports.get(node_id)
        if op == "network":
            sub = self.subs.get(node_id)
            return tuple(sub.view.outputs) if sub is not None and sub.view is not None else None
        return tuple(OPS[op].ports) if op in OPS else None

    def depends(self, nid: str | None, on: str, pos: tuple[int, int]) -> None:
        if nid is None:
            self.roots.add(on)
        elif on == nid:
            self.error_at(pos, "E205", f"cycle: {nid} -> {nid} (node '{nid}' depends on itself)")
        else:
            self.edges.setdefault(nid, {}).setdefault(on, pos)

    # -- templates and when ------------------------------------------------------------------------
    def _template(self, nid: str, loc: tuple, src: str, local: tuple[str, ...] = ()) -> None:
        try:
            ast = templates.parse(src)
        except TemplateSyntaxError as e:
            self.error_at(self.doc.line_in_string(loc, e.lineno or 1), "E208",
                          f"template syntax error in {_dotted(loc)}: {e.message}")
            return
        self._variables(nid, loc, src, ast, local)

    def _when(self, nid: str, loc: tuple, when: Any) -> None:
        if when is None or isinstance(when, bool):
            return
        if not isinstance(when, str):
            self.error(loc, "E112", f"{_dotted(loc)}: expected an expression, a reference or true/false, "
                                    f"got {describe(when)}")
            return
        ref = whole_reference(when)
        if ref is not None:
            self.reference(nid, ref, self.doc.string_position(loc, ref.start, ref.text))
            return
        if "${" in when:
            self.error(loc, "E206", f"{_dotted(loc)}: use either one reference or a Jinja expression, not both",
                       "in an expression, name values directly, e.g. when: check.answer == 'yes'")
            return
        try:
            ast = templates.parse("{{ (" + when + ") }}")
        except TemplateSyntaxError as e:
            hint = "write the expression without {{ }}" if "{{" in when else None
            self.error(loc, "E208", f"invalid expression in {_dotted(loc)}: {e.message}", hint)
            return
        self._variables(nid, loc, when, ast)

    def _variables(self, nid: str, loc: tuple, src: str, ast: jn.Template, local: tuple[str, ...] = ()) -> None:
        names = find_undeclared_variables(ast) - set(templates.environment().globals) - set(local)
        for name in sorted(names):
            pos = self._pos_in(loc, src, rf"(?<![\w.]){re.escape(name)}\b")
            if name in ("inputs", "params"):
                continue
            if name in self.view.nodes:
                self.depends(nid, name, pos)
            else:
                allowed = ["inputs", "params", *(n for n in self.view.nodes if n != nid)]
                hint = self._namespace_hint(name, as_ref=False) or did_you_mean(name, allowed)
                self.error_at(pos, "E207", f"template variable '{name}' in {_dotted(loc)} is not an input, "
                                           "a param or a node", hint)
        for item in ast.find_all((jn.Getattr, jn.Getitem)):
            base = item.node
            attr = item.attr if isinstance(item, jn.Getattr) else getattr(item.arg, "value", None)
            if not isinstance(base, jn.Name) or base.name not in names or not isinstance(attr, str):
                continue
            pos = self._pos_in(loc, src, rf"(?<![\w.]){re.escape(base.name)}\s*(\.\s*|\[\s*['\"]){re.escape(attr)}\b")
            if base.name == "inputs":
                self._name_in(pos, attr, self.view.inputs, "E203", "input", "inputs")
            elif base.name == "params":
                self._name_in(pos, attr, self.view.params, "E204", "param", "params")
            elif base.name in self.view.nodes and base.name != nid:
                self.port(base.name, attr, pos)

    def _namespace_hint(self, name: str, as_ref: bool) -> str | None:
        """`question` is an input: suggest `inputs.question` (or `${inputs.question}`)."""
        for section, names in (("inputs", self.view.inputs), ("params", self.view.params)):
            if name in names:
                return f"did you mean '${{{section}.{name}}}'?" if as_ref else f"did you mean '{section}.{name}'?"
        return None

    def _pos_in(self, loc: tuple, src: str, pattern: str) -> tuple[int, int]:
        m = re.search(pattern, src)
        return self.doc.string_position(loc, m.start(), m.group()) if m else self.doc.position(loc)

    # -- op rules ----------------------------------------------------------------------------------
    def _param_number(self, loc: tuple, text: str, kind: str, lo: float | None, hi: float | None,
                      code: str) -> None:
        ref = whole_reference(text)
        pos = self.doc.position(loc)
        if ref is None or not ref.tail or "." in ref.tail:
            self.error_at(pos, "E206", f"malformed reference '{text}' in {_dotted(loc)}: expected ${{params.NAME}}")
            return
        if ref.head != "params":
            self.error_at(pos, code, f"{_dotted(loc)} must be known before running: use {_article(kind)} or "
                                     f"${{params.NAME}}, not '{ref.text}'")
            return
        if ref.tail not in self.view.params:
            self._name_in(pos, ref.tail, self.view.params, "E204", "param", "params")
            return
        value = self.view.params[ref.tail]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        ok = numeric and (kind == "number" or float(value).is_integer())
        ok = ok and (lo is None or value >= lo) and (hi is None or value <= hi)
        if not ok:
            want = _article(kind) + (f" >= {lo}" if lo is not None else "") + (f" and <= {hi}" if hi is not None else "")
            self.error_at(pos, code, f"{_dotted(loc)}: {ref.text} is {describe(value)}; expected {want}",
                          f"set it with --set params.{ref.tail}=VALUE or in params:")

    def _regex(self, loc: tuple, pattern: Any) -> None:
        if not isinstance(pattern, str):
            return
        try:
            groups = re.compile(pattern).groups
        except re.error as e:
            pos = self.doc.string_position(loc, e.pos or 0) if e.pos is not None else self.doc.position(loc)
            self.error_at(pos, "E303", f"invalid regex in {_dotted(loc)}: {e.msg}")
            return
        if groups != 1:
            self.error(loc, "E303", f"{_dotted(loc)} must have exactly one capturing group (it has {groups})",
                       "the group captures the answer; use (?:...) for other groups")

    def _model_names(self, nid: str, loc: tuple, value: Any) -> None:
        items = [(loc, value)] if not isinstance(value, list) else [((*loc, i), v) for i, v in enumerate(value)]
        for item_loc, name in items:
            if isinstance(name, str) and name not in self.view.models:
                hint = did_you_mean(name, self.view.models) or _listing("models", self.view.models)
                self.error(item_loc, "E401", f"undefined model '{name}' in node '{nid}'", hint)

    # -- models, inputs, outputs -------------------------------------------------------------------
    def _models(self) -> None:
        providers = None
        for name, binding in self.view.models.items():
            if binding is None:
                continue
            loc = ("models", name)
            if providers is None:
                providers = known_providers()
            if binding.provider not in providers:
                self.error((*loc, "provider"), "E402", f"unknown provider '{binding.provider}' in model '{name}'",
                           did_you_mean(binding.provider, providers) or "providers: " + ", ".join(sorted(providers)))
            for fname, (kind, lo, hi) in _BINDING_NUMBERS.items():
                value = getattr(binding, fname)
                if isinstance(value, str):
                    self._param_number((*loc, fname), value, kind, lo, hi, "E403")

    def _inputs(self) -> None:
        for name, decl in self.view.inputs.items():
            if decl is None or "default" not in decl.model_fields_set or decl.default is None:
                continue
            types = _INPUT_TYPES[decl.type]
            ok = isinstance(decl.default, types) and not (isinstance(decl.default, bool) and bool not in types)
            if not ok:
                self.error(("inputs", name, "default"), "E114",
                           f"default of input '{name}' is {describe(decl.default)}, but its type is {decl.type}")

    def _outputs(self) -> None:
        for name, value in self.view.outputs.items():
            loc = ("outputs", name)
            ref = whole_reference(value) if isinstance(value, str) else None
            if ref is None:
                self.error(loc, "E209", f"output '{name}' must be one reference such as ${{node.port}}, "
                                        f"got {describe(value)}")
                continue
            self.reference(None, ref, self.doc.string_position(loc, ref.start, ref.text), "E209", "E209")

    # -- network -----------------------------------------------------------------------------------
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
    def _cycles(self) -> None:
        """Report one cycle per strongly connected group of nodes, e.g. `a -> b -> a`."""
        state: dict[str, int] = {}  # 1: on the DFS path, 2: done
        reported: set[str] = set()
        for start in sorted(self.edges):
            if start in state:
                continue
            path: list[str] = [start]
            todo = [iter(sorted(self.edges.get(start, {})))]
            state[start] = 1
            while todo:
                nxt = next(todo[-1], None)
                if nxt is None:
                    state[path.pop()] = 2
                    todo.pop()
                elif state.get(nxt) == 1:
                    cycle = path[path.index(nxt):]
                    if not set(cycle) <= reported:
                        reported |= set(cycle)
                        self._report_cycle(cycle)
                elif nxt not in state and nxt in self.edges:
                    state[nxt] = 1
                    path.append(nxt)
                    todo.append(iter(sorted(self.edges.get(nxt, {}))))

    def _report_cycle(self, cycle: list[str]) -> None:
        i = cycle.index(min(cycle))
        cycle = cycle[i:] + cycle[:i]
        pos = self.edges[cycle[0]][cycle[1 % len(cycle)]]
        self.error_at(pos, "E205", "cycle: " + " -> ".join([*cycle, cycle[0]]))

    def _unused(self) -> None:
        seen, todo = set(self.roots), list(self.roots)
        while todo:
            for dep in self.edges.get(todo.pop(), {}):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        for nid in self.view.nodes:
            if nid not in seen:
                self.diags.append(self.doc.diag(("nodes", nid), "W201", f"node '{nid}' is not used by any output "
                                                "(it will be pruned)", key=True, severity="warning"))


def _article(kind: str) -> str:
    return "an integer" if kind == "integer" else "a number"


def _listing(section: str, names: Iterable[str]) -> str:
    names = list(names)
    return f"{section}: {', '.join(names)}" if names else f"the spec declares no {section}"


def _dotted(loc: tuple) -> str:
    out = ""
    for seg in loc:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out

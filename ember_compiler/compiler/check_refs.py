"""The checker's graph rules (E2xx): references, template variables, ``when:``, outputs, cycles and
unused nodes. A mixin of ``Checker`` (``check_rules.py``)."""

from __future__ import annotations

import re
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2 import nodes as jn
from jinja2.meta import find_undeclared_variables

from ember_compiler import templates
from ember_compiler.compiler.check_fields import _dotted, _listing
from ember_compiler.ops.registry import OPS
from ember_compiler.spec.diagnostics import did_you_mean
from ember_compiler.spec.loader import describe
from ember_compiler.spec.refs import REF_RE, Reference, find_references, whole_reference

_REF_FORMS = "${inputs.NAME}, ${params.NAME} or ${NODE.PORT}"


class RefChecks:
    """Rules on the graph; ``self`` is the ``Checker`` (its ``doc``, ``view``, ``edges``, ``roots``)."""

    doc: Any
    view: Any
    edges: dict[str, dict[str, tuple[int, int]]]
    roots: set[str]
    subs: dict[str, Any]
    py_ports: dict[str, tuple[str, ...]]
    diags: list[Any]
    error: Any
    error_at: Any

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



"""Plans as text (jaxpr-like), Mermaid and Graphviz DOT.

Each renderer returns text without a trailing newline (like ``str(jaxpr)``). Text form, one line per
node, params sorted, template sources (``prompt``, ``system``) left out
(the header's hash covers them)::

    plan ensemble-judge  (6 calls, depth 2, width 5)  sha256:3f2a9c0e41b7…
      %candidates = llm.ensemble[model=worker n=5](%inputs.question)   # specs/x.yaml:14:3
      %final      = llm.judge[model=judge](question=%inputs.question, candidates=%candidates.responses)
      return answer=%final.answer

A ``map`` node's sub-plan prints indented below it, ending in ``return``. Expressions print as
``%inputs.q`` ($in; ``%#item``/``%#K`` inside a sub-plan), ``%node.port`` ($ref), ``%node`` ($node), JSON
($lit), ``[..]``, ``{k: ..}``, ``f"..{%x.y}.."`` ($fmt) and ``expr("src", k=..)`` ($expr). A
node's template variables (its ``vars`` input) print as the values they read; guards follow ``if``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..ops.registry import plan_op
from .analysis import analyze
from .expr import DictOf, Expr, Fmt, Guard, Input, ListOf, Lit, NodeRef, Ref, from_json, walk

TEMPLATE_PARAMS = frozenset({"prompt", "system"})
HASH_CHARS = 12  # hex digits of the hash shown in the header
COMMENT_COLUMN_MAX = 100  # source comments align up to this column
_BARE = re.compile(r"^[A-Za-z0-9_./-]+$")


# ---------------------------------------------------------------------------------------------- text


def to_text(plan: Any, *, print_source: bool = True) -> str:
    """The plan as text: a header, one line per node, then ``return``."""
    stats = analyze(plan)
    calls = "1 call" if stats.calls == 1 else f"{stats.calls} calls"
    digest = plan.hash.removeprefix("sha256:")[:HASH_CHARS]
    header = f"plan {plan.name}  ({calls}, depth {stats.depth}, width {stats.width})  sha256:{digest}…"
    lhs_width = max((len(n.id) + 1 for n in plan.nodes), default=0)
    bodies = [f"  {('%' + n.id).ljust(lhs_width)} = {_node_rhs(n)}" for n in plan.nodes]
    comment_at = min(max((len(b) for b in bodies), default=0), COMMENT_COLUMN_MAX)
    lines = [header]
    for node, body in zip(plan.nodes, bodies, strict=True):
        if print_source and node.source:
            body = f"{body.ljust(comment_at)}   # {node.source}"
        lines.append(body)
        if node.kind == "map":
            lines.extend(_sub_plan_lines(node))
    outputs = ", ".join(f"{name}={expr_text(e)}" for name, e in plan.outputs.items())
    lines.append(f"  return {outputs}")
    return "\n".join(lines)


def _sub_plan_lines(node: Any, indent: str = "      ") -> list[str]:
    """A map node's sub-plan, indented under it like a jaxpr's sub-jaxpr; ``%#item`` is the item."""
    inner = list(node.subplan.nodes)
    width = max((len(n.id) + 1 for n in inner), default=0)
    lines = [f"{indent}{('%' + n.id).ljust(width)} = {_node_rhs(n)}" for n in inner]
    for n in inner:
        if n.kind == "map":
            at = lines.index(next(line for line in lines if line.startswith(f"{indent}%{n.id} ")))
            lines[at + 1:at + 1] = _sub_plan_lines(n, indent + "    ")
    lines.append(f"{indent}return {expr_text(node.subplan.outputs['result'])}")
    return lines


def _node_rhs(node: Any) -> str:
    params = _params_text(node)
    args = ", ".join(_args(node))
    guard = " and ".join(expr_text(g) for g in node.when)
    return f"{node.kind}.{node.op}{params}({args})" + (f" if {guard}" if guard else "")


def _params_text(node: Any) -> str:
    op = plan_op(node.op)
    params = op.pp(node) if op is not None and op.pp is not None else node.params
    shown = [f"{k}={_scalar(v)}" for k, v in sorted(params.items()) if k not in TEMPLATE_PARAMS]
    return f"[{' '.join(shown)}]" if shown else ""


def _scalar(value: Any) -> str:
    if isinstance(value, str) and _BARE.match(value):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _args(node: Any) -> list[str]:
    """Template variables first (like positional arguments), then the named inputs."""
    named = [f"{name}={expr_text(e)}" for name, e in node.inputs.items() if name != "vars"]
    template_vars = node.inputs.get("vars")
    if template_vars is None or (isinstance(template_vars, DictOf) and not template_vars.entries):
        return named
    if not isinstance(template_vars, DictOf):
        return [f"vars={expr_text(template_vars)}", *named]
    return [*_vars_args(template_vars.entries, ""), *named]


def _vars_args(entries: tuple[tuple[str, Expr], ...], path: str) -> list[str]:
    """Template variables as the values they read; a literal keeps its name (``params={..}``)."""
    args: list[str] = []
    for name, expr in entries:
        if isinstance(expr, DictOf):
            args.extend(_vars_args(expr.entries, f"{path}{name}."))
        elif isinstance(expr, Input | Ref | NodeRef):
            args.append(expr_text(expr))
        else:
            args.append(f"{path}{name}={expr_text(expr)}")
    return args


def expr_text(expr: Any) -> str:
    """One expression, compactly (see the module docstring); JSON expressions are accepted too."""
    if isinstance(expr, dict):
        expr = from_json(expr)
    if not isinstance(expr, Expr):
        return _scalar(expr)
    if isinstance(expr, Input):  # inside a map's sub-plan, `#item` is the item and `#K` a captured outer value
        return f"%{expr.name}" if expr.name.startswith("#") else f"%inputs.{expr.name}"
    if isinstance(expr, Ref):
        return f"%{expr.node}.{expr.port}"
    if isinstance(expr, NodeRef):
        return f"%{expr.node}"
    if isinstance(expr, Lit):
        return json.dumps(expr.value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(expr, ListOf):
        return "[" + ", ".join(expr_text(e) for e in expr.items) + "]"
    if isinstance(expr, DictOf):
        return "{" + ", ".join(f"{k}: {expr_text(e)}" for k, e in expr.entries) + "}"
    if isinstance(expr, Fmt):
        parts = (json.dumps(p, ensure_ascii=False)[1:-1] if isinstance(p, str) else "{" + expr_text(p) + "}"
                 for p in expr.parts)
        return 'f"' + "".join(parts) + '"'
    assert isinstance(expr, Guard)
    bound = "".join(f", {k}={expr_text(e)}" for k, e in expr.vars)
    return f"expr({json.dumps(expr.source, ensure_ascii=False)}{bound})"


# --------------------------------------------------------------------------------------------- graph

# An endpoint is ("in", input name), ("node", node id) or ("out", output name).
Endpoint = tuple[str, str]


def edges(plan: Any) -> list[tuple[Endpoint, Endpoint, tuple[str, ...], bool]]:
    """One edge per (source, target) dependency: the ports read and whether only a guard reads it."""
    found: dict[tuple[Endpoint, Endpoint], tuple[set[str], bool]] = {}

    def add(exprs: Any, target: Endpoint, guard: bool) -> None:
        for expr in exprs:
            for e in walk(expr):
                source = _endpoint(e)
                if source is None:
                    continue
                ports, guard_only = found.get((source, target), (set(), True))
                if isinstance(e, Ref):
                    ports.add(e.port)
                found[(source, target)] = (ports, guard_only and guard)

    for node in plan.nodes:
        add(node.inputs.values(), ("node", node.id), False)
        add(node.when, ("node", node.id), True)
    for name, expr in plan.outputs.items():
        add([expr], ("out", name), False)
    return [(s, t, tuple(sorted(p)), g) for (s, t), (p, g) in found.items()]


def _endpoint(e: Expr) -> Endpoint | None:
    if isinstance(e, Input):
        return ("in", e.name)
    if isinstance(e, Ref | NodeRef):
        return ("node", e.node)
    return None


def _label(node: Any) -> list[str]:
    return [node.id, f"{node.kind}.{node.op}{_params_text(node)}"]


def to_mermaid(plan: Any) -> str:
    """A Mermaid ``flowchart TD``: inputs, nodes (llm rounded, fn boxes), outputs, one edge per
    dependency (dotted when only a guard reads it)."""
    lines = ["flowchart TD"]
    lines += [f'  {_mermaid_id(("in", name))}[/"{_mermaid_text(name)}"/]' for name in plan.inputs]
    for node in plan.nodes:
        label = "<br/>".join(_mermaid_text(part) for part in _label(node))
        open_, close = ("([", "])") if node.kind == "llm" else ("[", "]")
        lines.append(f'  {_mermaid_id(("node", node.id))}{open_}"{label}"{close}')
    lines += [f'  {_mermaid_id(("out", name))}[\\"{_mermaid_text(name)}"\\]' for name in plan.outputs]
    for source, target, ports, guard_only in edges(plan):
        arrow = "-.->" if guard_only else "-->"
        label = f"|{_mermaid_text(', '.join(ports))}|" if ports else ""
        lines.append(f"  {_mermaid_id(source)} {arrow}{label} {_mermaid_id(target)}")
    llm = [_mermaid_id(("node", n.id)) for n in plan.nodes if n.kind == "llm"]
    if llm:
        lines.append("  classDef llm fill:#eef4ff,stroke:#3b6fd4")
        lines.append(f"  class {','.join(llm)} llm")
    return "\n".join(lines)


def _mermaid_id(endpoint: Endpoint) -> str:
    """A valid, collision-free Mermaid id: ``_`` doubles, other non-alphanumerics become ``_HH``."""
    kind, name = endpoint
    escaped = "".join(c if c.isascii() and c.isalnum() else "__" if c == "_" else f"_{ord(c):02x}"
                      for c in name)
    return f"{kind}_{escaped}"


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label, using Mermaid's entity codes."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(char, code)
    return text


def to_dot(plan: Any) -> str:
    """A Graphviz digraph: the same graph as ``to_mermaid``."""
    lines = [f"digraph {_dot_str(plan.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica"];']
    lines += [f"  {_dot_id(('in', name))} [label={_dot_str(name)}, shape=invhouse];" for name in plan.inputs]
    for node in plan.nodes:
        style = "shape=box, style=rounded" if node.kind == "llm" else "shape=box"
        lines.append(f"  {_dot_id(('node', node.id))} [label={_dot_str(chr(10).join(_label(node)))}, {style}];")
    lines += [f"  {_dot_id(('out', name))} [label={_dot_str(name)}, shape=house];" for name in plan.outputs]
    for source, target, ports, guard_only in edges(plan):
        attrs = []
        if ports:
            attrs.append(f"label={_dot_str(', '.join(ports))}")
        if guard_only:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_dot_id(source)} -> {_dot_id(target)}{suffix};")
    lines.append("}")
    return "\n".join(lines)


def _dot_id(endpoint: Endpoint) -> str:
    # node ids cannot contain ":", so "in:x"/"out:x" never clash with them
    kind, name = endpoint
    return _dot_str(name if kind == "node" else f"{kind}:{name}")


def _dot_str(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'

"""`--set PATH=VALUE` overrides, applied to the loaded tree before validation (DESIGN §2).

PATH is a dotted path from the top level (`params.n`, `models.worker.temperature`,
`nodes.candidates.n`) or the shorthand `NODE.FIELD` for `nodes.NODE.FIELD`. Names must exist: an
unknown node, param, model, input or top-level key is a usage error with a "did you mean" hint.
A field missing on an existing node or model may be set; schema validation then judges it.
"""

from __future__ import annotations

import json
from typing import Any

from ember_compiler.errors import UsageError
from ember_compiler.spec.diagnostics import did_you_mean
from ember_compiler.spec.model import SpecBase as Spec

TOP_LEVEL = tuple(f.alias or name for name, f in Spec.model_fields.items())
_NAMED_SECTIONS = ("inputs", "models", "params", "nodes", "outputs")


def parse_set(text: str) -> tuple[str, Any]:
    """`"PATH=VALUE"` -> (PATH, VALUE); VALUE is parsed as JSON when it is JSON, else kept as a string.

    Raises:
        UsageError: no `=`, or an empty or malformed PATH.

    >>> parse_set("candidates.n=9")
    ('candidates.n', 9)
    >>> parse_set("models.judge.model=gpt-4o")
    ('models.judge.model', 'gpt-4o')
    """
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep:
        raise UsageError(f"--set expects PATH=VALUE, got {text!r}")
    _split(path)
    return path, parse_value(raw)


def parse_value(raw: str) -> Any:
    """JSON when `raw` is JSON (`9`, `true`, `[1, 2]`, `"x"`), else the string itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _split(path: str) -> list[str]:
    if not path:
        raise UsageError("--set expects PATH=VALUE with a non-empty PATH")
    parts = path.split(".")
    if any(not p.strip() or p != p.strip() for p in parts):
        raise UsageError(f"--set: malformed path {path!r} (use dots between names, e.g. candidates.n)")
    return parts


def apply_sets(data: Any, sets: dict[str, Any]) -> None:
    """Apply `--set` overrides to the loaded tree in place.

    Raises:
        UsageError: unknown top-level key, node, param, model or input; a path through a non-mapping.
    """
    for path, value in sets.items():
        _apply_one(data, path, value)


def _apply_one(data: Any, path: str, value: Any) -> None:
    if not isinstance(data, dict):
        raise UsageError(f"--set {path}: the spec's top level is not a mapping")
    parts = _split(path)
    head = parts[0]
    nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
    if head not in TOP_LEVEL:
        if head in nodes:
            if len(parts) < 2:
                raise UsageError(f"--set {path}: name a field of node '{head}', e.g. {head}.n=3")
            parts = ["nodes", *parts]
        else:
            hint = did_you_mean(head, list(nodes)) or did_you_mean(head, TOP_LEVEL)
            listing = f"nodes: {', '.join(map(str, nodes))}" if nodes else "the spec has no nodes"
            raise UsageError(f"--set {path}: '{head}' is neither a node nor a top-level key ({listing})"
                             + (f"; {hint}" if hint else ""))
    section = parts[0]
    if section in _NAMED_SECTIONS and len(parts) >= 2:
        names = data.get(section) if isinstance(data.get(section), dict) else {}
        name = parts[1]
        # a new output is harmless to add; everything else must already be declared
        if name not in names and section != "outputs":
            hint = did_you_mean(str(name), list(names))
            kind = {"inputs": "input", "models": "model", "params": "param", "nodes": "node"}[section]
            declared = f" (declared: {', '.join(map(str, names))})" if names else f" (the spec has no {section})"
            raise UsageError(f"--set {path}: unknown {kind} '{name}'" + (f"; {hint}" if hint else declared))
    _assign(data, parts, value, path)


def _index(node: list, seg: str) -> int | None:
    return int(seg) if seg.isdigit() and int(seg) < len(node) else None


def _assign(data: Any, parts: list[str], value: Any, path: str) -> None:
    node = data
    for i, seg in enumerate(parts[:-1]):
        if isinstance(node, dict):
            if node.get(seg) is None:
                node[seg] = {}
            node = node[seg]
        elif isinstance(node, list) and _index(node, seg) is not None:
            node = node[int(seg)]
        else:
            where = ".".join(parts[:i])
            raise UsageError(f"--set {path}: cannot set '{seg}' inside '{where}', which is not a mapping")
    last = parts[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and _index(node, last) is not None:
        node[int(last)] = value
    else:
        where = ".".join(parts[:-1])
        raise UsageError(f"--set {path}: cannot set '{last}' inside '{where}', which is not a mapping")

"""The spec's JSON Schema (generated from the pydantic model) and structure validation against it.

`schemas/ember-spec.schema.json` is `schema_text()` committed (regenerate: `ember schema >
schemas/ember-spec.schema.json`; a test fails when it is stale). `ember validate` checks structure
with that same schema, so editors, check-jsonschema and Ember agree; pydantic then builds the `Spec`.

NOTE: [Schema post-processing] pydantic's output is adjusted so plain JSON Schema tools (draft 7
editors included) enforce what pydantic enforces and report one error per problem:
- `patternProperties` on name-keyed maps becomes `propertyNames` + `additionalProperties`, so a bad
  name is an error (pydantic validates dict keys; `patternProperties` alone would let it pass);
- `ge`/`gt`/`le`/`lt` left on a union (not JSON Schema keywords) move into its numeric branches;
- the node union's `oneOf` + OpenAPI `discriminator` becomes an `op` enum plus one `if`/`then` per op.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from pydantic import ValidationError as PydanticError

from ember_compiler.ops import registry
from ember_compiler.spec.diagnostics import Diagnostic, did_you_mean
from ember_compiler.spec.loader import Document, describe
from ember_compiler.spec.model import NAME_PATTERN, REF_PATTERN

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "ember-spec.schema.json"
SCHEMA_ID = "urn:ember-compiler:spec:1"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
_BOUND_WORDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def _schema() -> dict:
    return _schema_of(registry.Spec)  # the registry rebuilds Spec when a plugin registers an op


@lru_cache(maxsize=4)
def _schema_of(spec: type) -> dict:
    raw = spec.model_json_schema(by_alias=True)
    _fix(raw)
    head = {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "Ember spec",
        "description": "An Ember spec: a Network of Networks (format version 1).",
    }
    return head | {k: v for k, v in raw.items() if k not in head}


def spec_json_schema() -> dict:
    """The JSON Schema of a spec (2020-12 dialect, usable by draft-7 tools)."""
    return copy.deepcopy(_schema())


def schema_text() -> str:
    """The schema exactly as committed in `schemas/ember-spec.schema.json`."""
    return json.dumps(_schema(), indent=2) + "\n"


def _fix(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _fix(item)
        return
    if not isinstance(node, dict):
        return
    pattern_props = node.get("patternProperties")
    if isinstance(pattern_props, dict) and len(pattern_props) == 1 and "additionalProperties" not in node:
        ((pattern, sub),) = pattern_props.items()
        del node["patternProperties"]
        node["propertyNames"] = {"pattern": pattern}
        node["additionalProperties"] = sub
    bounds = {_BOUNDS[k]: node.pop(k) for k in list(_BOUNDS) if k in node and "anyOf" in node}
    if bounds:
        _push_bounds(node, bounds)
    if "discriminator" in node and "oneOf" in node:
        _discriminated_to_if_then(node)
    for value in node.values():
        _fix(value)


def _push_bounds(node: dict, bounds: dict) -> None:
    for branch in node.get("anyOf", []):
        if branch.get("type") in ("integer", "number"):
            branch.update(bounds)
        elif "anyOf" in branch:
            _push_bounds(branch, bounds)


def _discriminated_to_if_then(node: dict) -> None:
    disc, branches = node.pop("discriminator"), node.pop("oneOf")
    prop = disc["propertyName"]
    tag_of = {ref: tag for tag, ref in disc["mapping"].items()}
    tags = [tag_of[b["$ref"]] for b in branches]
    node["type"] = "object"
    node["required"] = [prop]
    node["properties"] = {prop: {"enum": tags}}
    node["allOf"] = [
        {"if": {"type": "object", "required": [prop], "properties": {prop: {"const": tag}}},
         "then": {"$ref": b["$ref"]}}
        for tag, b in zip(tags, branches, strict=True)
    ]


# -- structure validation ---------------------------------------------------------------------------
def _validator() -> Draft202012Validator:
    return _validator_of(registry.Spec)


@lru_cache(maxsize=4)
def _validator_of(spec: type) -> Draft202012Validator:
    return Draft202012Validator(_schema_of(spec))


def validate_structure(doc: Document, data: dict) -> tuple[Any, list[Diagnostic]]:
    """Check `data` (plain JSON of `doc`) against the schema, then build the `Spec` with pydantic.

    Returns the spec (None when invalid) and one diagnostic per problem, positioned in `doc`.
    """
    mapper = _ErrorMapper(doc)
    for err in _validator().iter_errors(data):
        mapper.add(err)
    diags = mapper.result()
    if diags:
        return None, diags
    try:
        return registry.Spec.model_validate(data), []
    except PydanticError as e:
        return None, pydantic_diagnostics(doc, e)
    except (TypeError, ValueError) as e:  # a constraint pydantic cannot apply: a model bug, not the user's
        return None, [doc.diag((), "E112", f"the spec model rejected this document: {e}")]


def pydantic_diagnostics(doc: Document, error: PydanticError) -> list[Diagnostic]:
    """Map pydantic errors to positions (the fallback when the JSON Schema let something pass)."""
    codes = {"extra_forbidden": "E110", "missing": "E111", "union_tag_invalid": "E113"}
    out = []
    for e in error.errors():
        loc = tuple(e["loc"])
        code = codes.get(e["type"], "E112")
        where = dotted(_without_tags(doc.data, loc))
        out.append(doc.diag(loc, code, f"{where}: {e['msg']}" if where else e["msg"], key=code == "E110"))
    return out


def _without_tags(data: Any, loc: tuple) -> tuple:
    """`loc` minus the union tags pydantic inserts (`('nodes', 'a', 'vote', 'x')` -> `nodes.a.x`)."""
    out, node = [], data
    for i, seg in enumerate(loc):
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if isinstance(node, dict) and seg not in node and nxt is not None and nxt in node:
            continue
        out.append(seg)
        node = node.get(seg) if isinstance(node, dict) else (
            node[seg] if isinstance(node, list) and isinstance(seg, int) and seg < len(node) else None)
    return tuple(out)


def dotted(path: tuple) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out


def _json_type(value: Any) -> set[str]:
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number", "integer"} if value.is_integer() else {"number"}
    if isinstance(value, str):
        return {"string"}
    return {"array"} if isinstance(value, list) else {"object"}


def _resolve(schema: dict) -> dict:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _schema()["$defs"][ref.split("/")[-1]]
    return schema


def _schema_types(schema: dict) -> set[str]:
    schema = _resolve(schema)
    if "anyOf" in schema:
        return set().union(*(_schema_types(b) for b in schema["anyOf"]))
    if "type" in schema:
        t = schema["type"]
        return set(t) if isinstance(t, list) else {t}
    if "enum" in schema:
        return set().union(*(_json_type(v) for v in schema["enum"]))
    return {"null", "boolean", "integer", "number", "string", "array", "object"}


def _schema_words(schema: dict) -> list[str]:
    schema = _resolve(schema)
    if "anyOf" in schema:
        return [w for b in schema["anyOf"] for w in _schema_words(b)]
    if "enum" in schema:
        return ["one of " + ", ".join(repr(v) for v in schema["enum"])]
    t = schema.get("type")
    if t == "null":
        return []
    if t == "string" and schema.get("pattern") == REF_PATTERN:
        return ["a reference like ${params.NAME}"]
    if t in ("integer", "number"):
        word = "an integer" if t == "integer" else "a number"
        limits = [f"{_BOUND_WORDS[k]} {schema[k]}" for k in _BOUND_WORDS if k in schema]
        return [" ".join([word, *limits]) if limits else word]
    if t == "array":
        inner = _schema_words(schema.get("items", {}))
        return [f"a list of {inner[0].removeprefix('a ').removeprefix('an ')}s" if inner else "a list"]
    return {"string": ["a string"], "boolean": ["true or false"], "object": ["a mapping"]}.get(t, ["a value"])


def _expected(schema: dict) -> str:
    words = list(dict.fromkeys(_schema_words(schema)))
    return " or ".join(words) if words else "null"


class _ErrorMapper:
    """jsonschema errors -> one diagnostic per problem, with names and "did you mean" hints."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.diags: list[Diagnostic] = []
        self.missing: dict[tuple, list[tuple[str, Diagnostic]]] = {}
        self.suggested: set[tuple[tuple, str]] = set()

    def result(self) -> list[Diagnostic]:
        out = list(self.diags)
        for path, items in self.missing.items():
            out += [d for name, d in items if (path, name) not in self.suggested]
        return list(dict.fromkeys(out))

    def add(self, err: ValidationError) -> None:
        path = tuple(err.absolute_path)
        kind = err.validator
        if "propertyNames" in err.relative_schema_path:
            self._bad_name(path, err.instance)
        elif kind == "additionalProperties":
            self._unknown_keys(path, err)
        elif kind == "required":
            self._missing(path, err)
        elif kind in ("anyOf", "oneOf"):
            self._union(path, err)
        elif kind == "enum":
            self._enum(path, err)
        else:
            self.diags.append(self.doc.diag(path, "E112", self._message(path, err)))

    def _bad_name(self, path: tuple, name: Any) -> None:
        self.diags.append(self.doc.diag(
            path + (name,), "E112",
            f"invalid name {name!r} in {dotted(path) or 'the spec'}: use letters, digits, '_' and '-'",
            key=True))

    def _unknown_keys(self, path: tuple, err: ValidationError) -> None:
        allowed = list(err.schema.get("properties", {}))
        for key in err.instance:
            if key in allowed:
                continue
            hint = did_you_mean(key, allowed)
            if hint:
                self.suggested.add((path, hint.split("'")[1]))
            else:
                hint = "allowed keys: " + ", ".join(allowed)
            self.diags.append(self.doc.diag(path + (key,), "E110", f"unknown key '{key}' {_where(path, err.instance)}",
                                            hint, key=True))

    def _missing(self, path: tuple, err: ValidationError) -> None:
        for name in err.validator_value:
            if name in err.instance:
                continue
            hint = None
            if name == "op" and len(path) == 2 and path[0] == "nodes":
                hint = "op is one of: " + ", ".join(_schema()["properties"]["nodes"]["additionalProperties"]
                                                    ["properties"]["op"]["enum"])
            d = self.doc.diag(path, "E111", f"missing required field '{name}' {_where(path, err.instance)}",
                              hint, key=bool(path))
            self.missing.setdefault(path, []).append((name, d))

    def _enum(self, path: tuple, err: ValidationError) -> None:
        options = [str(v) for v in err.validator_value]
        hint = did_you_mean(err.instance, options) if isinstance(err.instance, str) else None
        if len(path) == 3 and path[0] == "nodes" and path[2] == "op":
            msg = f"unknown op {_show(err.instance)} in node '{path[1]}'"
            self.diags.append(self.doc.diag(path, "E113", msg, hint or "ops: " + ", ".join(options)))
            return
        msg = f"{dotted(path)}: {_show(err.instance)} is not one of " + ", ".join(repr(o) for o in options)
        self.diags.append(self.doc.diag(path, "E112", msg, hint))

    def _union(self, path: tuple, err: ValidationError) -> None:
        branches = err.validator_value
        kinds = _json_type(err.instance)
        fits = [i for i, b in enumerate(branches) if kinds & _schema_types(b)]
        if len(fits) == 1 and _resolve(branches[fits[0]]).get("pattern") != REF_PATTERN:
            subs = [e for e in err.context if e.relative_schema_path[0] == fits[0]]
            if subs:
                for sub in subs:
                    self.add(sub)
                return
        msg = f"{dotted(path)}: expected {_expected(err.schema)}, got {describe(err.instance)}"
        self.diags.append(self.doc.diag(path, "E112", msg))

    def _message(self, path: tuple, err: ValidationError) -> str:
        where = dotted(path) or "spec"
        kind, value, inst = err.validator, err.validator_value, err.instance
        if kind == "type":
            return f"{where}: expected {_expected(err.schema)}, got {describe(inst)}"
        if kind == "const" and path == ("ember",):
            return f"unsupported spec version {_show(inst)}: this Ember reads 'ember: 1'"
        if kind == "pattern" and value == NAME_PATTERN:
            return f"{where}: invalid name {inst!r}: use letters, digits, '_' and '-'"
        if kind in _BOUND_WORDS:
            return f"{where}: must be {_BOUND_WORDS[kind]} {value}, got {inst!r}"
        if kind in ("minProperties", "minItems") and value == 1:
            return f"{where}: must not be empty"
        return f"{where}: {err.message}"


def _show(value: Any) -> str:
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return repr(value)
    return describe(value)


def _where(path: tuple, instance: Any) -> str:
    if not path:
        return "at the top level"
    if len(path) == 2 and path[0] == "nodes":
        op = instance.get("op") if isinstance(instance, dict) else None
        return f"in node '{path[1]}'" + (f" (op {op})" if isinstance(op, str) else "")
    if len(path) == 2 and path[0] in ("models", "inputs"):
        return f"in {path[0][:-1]} '{path[1]}'"
    return f"in {dotted(path)}"

"""Property tests: mutated specs give diagnostics (or none), never an exception or an internal error."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from ember_compiler.compiler.check import load_spec, validate_paths
from ember_compiler.compiler.schema import spec_json_schema
from ember_compiler.errors import SpecInvalid
from ember_compiler.ops.registry import Spec
from ember_compiler.spec.diagnostics import Diagnostic
from ember_compiler.spec.loader import load_document, to_plain

VALID = Path(__file__).resolve().parents[2] / "fixtures" / "valid"
SOURCES = sorted(p.relative_to(VALID) for p in VALID.rglob("*") if p.suffix in (".yaml", ".json"))
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

WORDS = ["op", "model", "models", "prompt", "n", "${a.text}", "${inputs.question}", "${params.n}", "{{ x }}",
         "{% if %}", "ensemble", "network", "sim", "${", "}}", "candidates", "when", "spec", "with", "../x.yaml"]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(WORDS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6),
                                                                inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "specs"
    shutil.copytree(VALID, root)
    return root


def _check(workdir: Path, rel: Path, content: bytes) -> list[Diagnostic]:
    path = workdir / rel
    original = path.read_bytes()
    try:
        path.write_bytes(content)
        diags = validate_paths([path])
        _assert_well_formed(diags)
        if rel.parts[0] == "sub":  # the includer sees the mutated sub-spec
            _assert_well_formed(validate_paths([workdir / "with_network.yaml"]))
        errors = [d for d in diags if d.severity == "error"]
        try:
            load_spec(path)
            assert not errors, "load_spec accepted a spec validate_paths rejects"
        except SpecInvalid as e:
            assert errors, "load_spec rejected a spec validate_paths accepts"
            assert all(d in errors for d in e.diagnostics)
        return diags
    finally:
        path.write_bytes(original)


def _assert_well_formed(diags: Any) -> None:
    assert isinstance(diags, list)
    for d in diags:
        assert isinstance(d, Diagnostic)
        assert d.code != "E999", d.render()
        assert re.fullmatch(r"[EW]\d{3}", d.code) and d.line >= 1 and d.column >= 1
        assert d.render() and d.render_github()


@FUZZ
@given(data=st.data())
def test_text_mutations_never_raise(workdir: Path, data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from(SOURCES))
    text = (VALID / rel).read_text()
    lines = text.splitlines(keepends=True)
    kind = data.draw(st.sampled_from(["truncate", "delete", "duplicate", "insert", "replace"]))
    i = data.draw(st.integers(0, len(lines) - 1))
    if kind == "truncate":
        text = text[: data.draw(st.integers(0, len(text)))]
    elif kind == "delete":
        text = "".join(lines[:i] + lines[i + 1 :])
    elif kind == "duplicate":
        text = "".join(lines[: i + 1] + lines[i:])
    elif kind == "insert":
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.text(max_size=20) | st.sampled_from(WORDS)) + text[at:]
    else:
        indent = re.match(r"\s*", lines[i]).group()
        lines[i] = indent + data.draw(st.text(max_size=30)) + "\n"
        text = "".join(lines)
    _check(workdir, rel, text.encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(rel=st.sampled_from(SOURCES), garbage=st.binary(max_size=300))
def test_binary_garbage_never_raises(workdir: Path, rel: Path, garbage: bytes) -> None:
    diags = _check(workdir, rel, garbage)
    assert diags or garbage.strip() == b""  # garbage is never a valid spec


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(data: Any, path: tuple, action: str, value: Any) -> None:
    parent = data
    for seg in path[:-1]:
        parent = parent[seg]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif action == "rename" and isinstance(parent, dict):
        parent[str(last)[:-1] + "x"] = parent.pop(last)
    elif action == "add" and isinstance(parent[last], dict):
        parent[last][f"extra_{len(parent[last])}"] = value


@FUZZ
@given(data=st.data())
def test_structural_mutations_never_raise_and_schema_agrees_with_model(workdir: Path, data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from(SOURCES))
    tree = to_plain(load_document(VALID / rel).data)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(tree) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        _mutate(tree, path, data.draw(st.sampled_from(["delete", "replace", "rename", "add"])), data.draw(values))
    # whatever the JSON Schema accepts, the pydantic model must accept too (editors and ember agree)
    if isinstance(tree, dict) and not list(Draft202012Validator(spec_json_schema()).iter_errors(tree)):
        Spec.model_validate(tree)
    _check(workdir, rel, json.dumps(tree, indent=1).encode())

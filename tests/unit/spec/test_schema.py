"""The committed JSON Schema is current, valid, and agrees with `ember validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from ember_compiler.compiler.check import validate_paths
from ember_compiler.compiler.schema import SCHEMA_PATH, schema_text, spec_json_schema
from ember_compiler.spec.loader import load_document, to_plain

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
REGENERATE = "the committed schema is stale: regenerate it with `ember schema > schemas/ember-spec.schema.json`"


def test_committed_schema_is_current() -> None:
    assert SCHEMA_PATH == ROOT / "schemas" / "ember-spec.schema.json"
    assert SCHEMA_PATH.is_file(), REGENERATE
    committed = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert committed == spec_json_schema(), REGENERATE
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), REGENERATE


def test_schema_text_is_what_the_cli_prints() -> None:
    # cli/output.print_json: json.dumps(data, indent=2) + newline
    assert schema_text() == json.dumps(spec_json_schema(), indent=2) + "\n"


def test_schema_header_and_dialects() -> None:
    schema = spec_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"]
    Draft202012Validator.check_schema(schema)
    Draft7Validator.check_schema(schema)


def test_schema_avoids_keywords_draft7_editors_mishandle() -> None:
    text = json.dumps(spec_json_schema())
    for keyword in ("prefixItems", "unevaluatedProperties", "discriminator", '"ge"', '"le"', '"gt"', '"lt"',
                    "patternProperties"):
        assert keyword not in text, keyword


def test_spec_returns_a_copy() -> None:
    spec_json_schema()["title"] = "changed"
    assert spec_json_schema()["title"] != "changed"


def _valid_files() -> list[Path]:
    files = sorted(p for p in (FIXTURES / "valid").rglob("*") if p.suffix in (".yaml", ".json"))
    if (ROOT / "specs").is_dir():
        files += sorted(p for p in (ROOT / "specs").rglob("*.yaml"))
    return files


@pytest.mark.parametrize("validator", [Draft7Validator, Draft202012Validator], ids=["draft7", "2020-12"])
def test_editors_accept_valid_specs(validator) -> None:
    check = validator(json.loads(SCHEMA_PATH.read_text()))
    for path in _valid_files():
        errors = list(check.iter_errors(to_plain(load_document(path).data)))
        assert errors == [], f"{path}: {errors[0].message}"


STRUCTURAL = {"E110", "E111", "E112", "E113"}


@pytest.mark.parametrize("validator", [Draft7Validator, Draft202012Validator], ids=["draft7", "2020-12"])
def test_editors_reject_what_validate_rejects_structurally(validator) -> None:
    check = validator(json.loads(SCHEMA_PATH.read_text()))
    seen = 0
    for path in sorted((FIXTURES / "invalid").glob("*.*")):
        diags = validate_paths([path])
        if not diags or not {d.code for d in diags} <= STRUCTURAL:
            continue
        seen += 1
        assert list(check.iter_errors(to_plain(load_document(path).data))), path.name
    assert seen >= 6


@pytest.mark.parametrize(
    ("snippet", "valid"),
    [
        ({"op": "ensemble", "model": "m", "prompt": "p", "n": "${params.n}"}, True),
        ({"op": "ensemble", "model": "m", "prompt": "p", "n": 0}, False),
        ({"op": "ensemble", "model": "m", "prompt": "p", "n": "five"}, False),
        ({"op": "vote", "candidates": []}, True),
        ({"op": "vote"}, False),
        ({"op": "nope", "candidates": []}, False),
        ({"candidates": []}, False),
        ({"op": "vote", "candidates": [], "extra": 1}, False),
    ],
)
def test_node_union_in_plain_json_schema(snippet: dict, valid: bool) -> None:
    spec = {"ember": 1, "name": "x", "nodes": {"a": snippet}, "outputs": {"o": "${a.answer}"}}
    errors = list(Draft7Validator(spec_json_schema()).iter_errors(spec))
    assert (errors == []) is valid, [e.message for e in errors]


def test_bad_names_are_rejected_by_the_schema_too() -> None:
    spec = {"ember": 1, "name": "x", "nodes": {"bad id": {"op": "vote", "candidates": []}},
            "outputs": {"o": "${a.answer}"}}
    assert list(Draft202012Validator(spec_json_schema()).iter_errors(spec))


def test_pre_commit_hook_definition() -> None:
    from ruamel.yaml import YAML

    hooks = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "ember-validate"]
    assert hook["entry"] == "ember validate" and hook["language"] == "python"


def test_pydantic_fallback_maps_positions() -> None:
    from pydantic import ValidationError

    from ember_compiler.compiler.schema import pydantic_diagnostics
    from ember_compiler.ops.registry import Spec

    doc = load_document("s.yaml", "ember: 1\nname: x\nnodes:\n  a: {op: vote, candidates: [], nope: 1}\n")
    with pytest.raises(ValidationError) as info:
        Spec.model_validate(to_plain(doc.data))
    diags = pydantic_diagnostics(doc, info.value)
    assert {(d.code, d.line, d.column) for d in diags} == {("E110", 4, 33), ("E111", 1, 1)}
    assert "nodes.a.nope:" in diags[0].message + diags[1].message

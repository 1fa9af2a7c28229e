"""`ember validate` behind the CLI: fixtures with expected positions and codes, sets, folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ember_compiler.compiler.check import check_spec, load_spec, validate_paths
from ember_compiler.compiler.sets import apply_sets, parse_set
from ember_compiler.errors import SpecInvalid, UsageError
from ember_compiler.ops.registry import Spec
from ember_compiler.spec.codes import CODES
from ember_compiler.spec.diagnostics import Diagnostic, render_all
from ember_compiler.spec.loader import load_document
from ember_compiler.testing.fixtures import FixtureCase, expected, invalid_cases, invalid_files

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
INVALID = FIXTURES / "invalid"
VALID = FIXTURES / "valid"
INVALID_FILES = invalid_files(INVALID)
CASES = invalid_cases(INVALID)


def test_every_invalid_fixture_states_its_expectation() -> None:
    assert len(INVALID_FILES) >= 30
    for path in INVALID_FILES:
        assert expected(path), f"{path.name} has no '# expect: LINE:COL CODE' header"


def test_every_registered_code_has_an_invalid_fixture() -> None:
    covered = {code for case in CASES for *_, code in case.expected}
    missing = sorted(set(CODES) - covered)
    assert not missing, f"codes without a fixture in {INVALID} (add one with '# expect: LINE:COL CODE'): {missing}"


def test_every_fixture_expects_registered_codes_and_is_named_after_one() -> None:
    for case in CASES:
        codes = {code for *_, code in case.expected}
        assert codes <= set(CODES), f"{case.path.name}: unregistered {sorted(codes - set(CODES))}"
        prefix = case.path.name.split("_")[0].upper()
        if prefix != "MULTI":
            assert prefix in codes, f"{case.path.name} is named after {prefix} but does not expect it"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.path.name)
def test_invalid_fixture_reports_exactly_the_expected_errors(case: FixtureCase, monkeypatch) -> None:
    case.patch(monkeypatch)
    diags = case.validate()
    got = {(d.file, d.line, d.column, d.code) for d in diags}
    assert got == case.expected, "\n".join(d.render() for d in diags)


def test_import_fixtures_report_nothing_without_import() -> None:
    cases = [c for c in CASES if c.import_operators]
    assert cases
    for case in cases:
        assert validate_paths(case.targets) == [], f"{case.path.name}: without --import no code is imported"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.path.name)
def test_load_spec_raises_with_all_errors_sorted(case: FixtureCase, monkeypatch) -> None:
    case.patch(monkeypatch)
    (target,) = case.targets
    if case.simulate == "internal-error":  # only validate_paths turns a bug into E999; load_spec lets it out
        with pytest.raises(RuntimeError, match="simulated bug"):
            load_spec(target)
        return
    if case.import_operators or not case.has_errors:  # load_spec imports no operators; warnings never raise
        doc, _ = load_spec(target)
        assert case.import_operators or {(d.file, d.line, d.column, d.code) for d in doc.diagnostics} == case.expected
        return
    with pytest.raises(SpecInvalid) as info:
        load_spec(target)
    diags = info.value.diagnostics
    assert {(d.file, d.line, d.column, d.code) for d in diags} == case.expected
    assert diags == sorted(diags, key=lambda d: (d.file, d.line, d.column))


def test_internal_error_is_one_diagnostic_and_the_other_files_are_validated(monkeypatch) -> None:
    (case,) = [c for c in CASES if c.simulate == "internal-error"]
    case.patch(monkeypatch)
    diags = validate_paths([*case.targets, VALID, INVALID / "e113_unknown_op.yaml"])
    assert sorted(d.code for d in diags) == ["E113", "E999"]  # a valid folder, then a file that is invalid
    (crash,) = [d for d in diags if d.code == "E999"]
    assert crash.render() == (f"{case.targets[0]}:1:1: error: internal error: RuntimeError: simulated bug "
                                 "(test-only patch) [E999]")


def test_multi_error_file_reports_everything_at_once() -> None:
    diags = validate_paths([INVALID / "multi_error.yaml"])
    assert [d.code for d in diags] == ["E112", "E110", "E401", "E113", "E201", "E203", "E209"]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("e110_unknown_key.yaml", "did you mean 'prompt'?"),
        ("e110_unknown_key.json", "did you mean 'temperature'?"),
        ("e113_unknown_op.yaml", "did you mean 'ensemble'?"),
        ("e201_unknown_node.yaml", "did you mean 'candidates'?"),
        ("e202_unknown_port.yaml", "did you mean 'answer'?"),
        ("e202_template_port.yaml", "did you mean 'answer'?"),
        ("e203_unknown_input.yaml", "did you mean 'question'?"),
        ("e204_unknown_param.yaml", "did you mean 'samples'?"),
        ("e205_cycle.yaml", "cycle: a -> b -> c -> a"),
        ("e206_bad_reference.yaml", "${a.text}"),
        ("e208_when_syntax.yaml", "without {{ }}"),
        ("e209_output.yaml", "did you mean 'answer'?"),
        ("e304_recursive.yaml", "e304_recursive.yaml -> loop.yaml -> e304_recursive.yaml"),
        ("e305_with_key.yaml", "did you mean 'question'?"),
        ("e306_unbound_input.yaml", "'question'"),
        ("e401_undefined_model.yaml", "did you mean 'judge'?"),
        ("e402_unknown_provider.yaml", "did you mean 'anthropic'?"),
        ("multi_error.yaml", "did you mean 'worker'?"),
    ],
)
def test_messages_name_the_problem_and_suggest_a_fix(name: str, needle: str) -> None:
    text = render_all(validate_paths([INVALID / name]))
    assert needle in text, text


def test_missing_prompt_is_not_reported_twice_for_a_typo() -> None:
    diags = validate_paths([INVALID / "e110_unknown_key.yaml"])
    assert [d.code for d in diags] == ["E110"]


VALID_FILES = sorted(p for p in VALID.rglob("*") if p.suffix in (".yaml", ".json"))


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_valid_fixture_has_no_diagnostics(path: Path) -> None:
    assert validate_paths([path]) == []
    doc, spec = load_spec(path)
    assert isinstance(spec, Spec) and doc.diagnostics == []
    assert check_spec(doc, spec) == []


def test_valid_folder_and_network_fixture() -> None:
    assert validate_paths([VALID]) == []
    _, spec = load_spec(VALID / "with_network.yaml")
    assert spec.nodes["inner"].op == "network"


# -- semantics not covered by a fixture file ---------------------------------------------------------
BASE = """\
ember: 1
name: t
inputs: {q: string}
params: {n: 3}
models:
  m: {provider: sim}
nodes:
  a: {op: generate, model: m, prompt: "{{ inputs.q }}"}
  b:
    op: ensemble
    model: m
    n: ${params.n}
    prompt: "{{ a.answer }}"
outputs: {r: "${b.responses}"}
"""


def _check(tmp_path: Path, text: str, name: str = "s.yaml") -> list[Diagnostic]:
    path = tmp_path / name
    path.write_text(text)
    return validate_paths([path])


def _codes(diags: list[Diagnostic]) -> list[str]:
    return [d.code for d in diags]


def test_base_spec_is_valid(tmp_path: Path) -> None:
    assert _check(tmp_path, BASE) == []


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ('prompt: "{{ a.answer }}"', 'prompt: "{{ b.answer }}"', "E205"),  # itself, via a template
        ('prompt: "{{ a.answer }}"', 'prompt: "{{ inputs[\'x\'] }}"', "E203"),
        ('prompt: "{{ a.answer }}"', 'prompt: "{{ params.k }}"', "E204"),
        ('prompt: "{{ a.answer }}"', 'prompt: "{{ zz }}"', "E207"),
        ('prompt: "{{ a.answer }}"', 'prompt: "{{ a.answer }"', "E208"),
        ('prompt: "{{ a.answer }}"', 'prompt: "${a.answer} and ${inputs"', "E206"),
        ("n: ${params.n}", "n: ${inputs.q}", "E302"),
        ("n: ${params.n}", "n: ${params.m}", "E204"),
        ("params: {n: 3}", "params: {n: 2.5}", "E302"),
        ("params: {n: 3}", "params: {n: true}", "E302"),
        ("model: m\n    n:", "models: []\n    n:", "E301"),
        ("model: m\n    n:", "n:", "E301"),
        ('outputs: {r: "${b.responses}"}', 'outputs: {r: "${inputs.z}"}', "E203"),
        ('outputs: {r: "${b.responses}"}', 'outputs: {r: "${b}"}', "E206"),
        ('outputs: {r: "${b.responses}"}', 'outputs: {r: "x ${b.responses}"}', "E209"),
        ("  m: {provider: sim}", "  m: {provider: sim, accuracy: '${params.n}'}", "E403"),
        ("  m: {provider: sim}", "  m: {provider: sim, max_tokens: '${inputs.q}'}", "E403"),
        ("  m: {provider: sim}", "  m: {provider: sim, temperature: 2.5}", "E112"),  # the APIs take 0–2
    ],
)
def test_semantic_rules(tmp_path: Path, old: str, new: str, code: str) -> None:
    assert old in BASE
    diags = _check(tmp_path, BASE.replace(old, new, 1))
    assert code in _codes(diags), render_all(diags)


def test_when_expression_and_reference(tmp_path: Path) -> None:
    ok = BASE.replace("    n: ${params.n}", "    when: a.answer == 'x' and inputs.q\n    n: ${params.n}")
    assert _check(tmp_path, ok) == []
    ok = BASE.replace("    n: ${params.n}", "    when: ${a.answer}\n    n: ${params.n}")
    assert _check(tmp_path, ok) == []
    bad = BASE.replace("    n: ${params.n}", "    when: a.answr == 'x' or nobody\n    n: ${params.n}")
    diags = _check(tmp_path, bad)
    assert _codes(diags) == ["E202", "E207"]
    assert (diags[0].line, diags[0].column) == (12, 11)  # `a.answr` inside the expression
    assert (diags[1].line, diags[1].column) == (12, 29)  # `nobody`


def test_when_edges_make_cycles(tmp_path: Path) -> None:
    text = BASE.replace("  a: {op: generate, model: m, prompt: \"{{ inputs.q }}\"}",
                        "  a: {op: generate, model: m, prompt: \"{{ inputs.q }}\", when: b.responses}")
    assert "cycle: a -> b -> a" in render_all(_check(tmp_path, text))


def test_unused_node_is_a_warning_only(tmp_path: Path) -> None:
    text = BASE.replace("nodes:\n", "nodes:\n  spare: {op: generate, model: m, prompt: hi}\n")
    diags = _check(tmp_path, text)
    assert [(d.code, d.severity, d.line) for d in diags] == [("W201", "warning", 8)]
    path = tmp_path / "s.yaml"
    doc, _ = load_spec(path)  # warnings never raise
    assert [d.code for d in doc.diagnostics] == ["W201"]


def test_provider_plugins_from_entry_points(monkeypatch, tmp_path: Path) -> None:
    from ember_compiler.providers import registry

    text = BASE.replace("{provider: sim}", "{provider: myplug}")
    assert _codes(_check(tmp_path, text)) == ["E402"]
    # validation asks the provider registry (the one known_providers()): a plugin's entry point counts
    monkeypatch.setattr(registry, "_entry_points", lambda: {"myplug": object()})
    assert _check(tmp_path, text) == []


def test_json_spec_semantic_positions(tmp_path: Path) -> None:
    spec = {"ember": 1, "name": "j", "models": {"m": {"provider": "sim"}},
            "nodes": {"a": {"op": "generate", "model": "m", "prompt": "hi"},
                      "b": {"op": "vote", "candidates": ["${a.answer}", "${a.answr}"]}},
            "outputs": {"v": "${b.answer}"}}
    text = json.dumps(spec, indent=2)
    diags = _check(tmp_path, text, "s.json")
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "a.answr" in ln)
    col = text.splitlines()[line - 1].index("${a.answr}") + 1
    assert [(d.code, d.line, d.column) for d in diags] == [("E202", line, col)]


# -- folders ----------------------------------------------------------------------------------------
def test_folder_expansion_skips_non_specs_and_hidden_dirs(tmp_path: Path) -> None:
    shutil.copy(VALID / "json_spec.json", tmp_path / "good.json")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.json").write_text(json.dumps([{"question": "q", "answer": "A"}]))
    (tmp_path / "data" / "table.json").write_text(json.dumps({"nodes": 3, "rows": []}))
    (tmp_path / ".pre-commit-hooks.yaml").write_text("- id: x\n  entry: y\n")
    (tmp_path / "config.yml").write_text("key: [unclosed\n")
    (tmp_path / ".ember" / "runs").mkdir(parents=True)
    (tmp_path / ".ember" / "runs" / "broken.yaml").write_text("ember: 1\nnodes: [\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "broken.yaml").write_text("ember: 1\n")
    (tmp_path / "broken.yaml").write_text("ember: 1\nname: x\nnodes: {a: {op: vote}}\noutputs: {v: '${a.answer}'}\n")
    diags = validate_paths([tmp_path])
    assert {(Path(d.file).name, d.code) for d in diags} == {("broken.yaml", "E111")}
    # named explicitly, a non-spec is validated and reported
    assert _codes(validate_paths([tmp_path / "data" / "rows.json"])) == ["E103"]
    assert "E100" in _codes(validate_paths([tmp_path / "config.yml"]))


def test_missing_path_is_a_diagnostic(tmp_path: Path) -> None:
    diags = validate_paths([tmp_path / "nope.yaml", VALID])
    assert [(d.code, d.line, d.column) for d in diags] == [("E104", 1, 1)]


def test_subspec_errors_are_reported_once(tmp_path: Path) -> None:
    diags = validate_paths([INVALID / "e304_invalid_subspec.yaml", INVALID / "sub" / "broken.yaml"])
    assert _codes(diags) == ["E304", "E110"]


def test_valid_repo_specs() -> None:
    specs = Path(__file__).resolve().parents[3] / "specs"
    if not specs.is_dir():
        pytest.skip("no specs/ folder")
    errors = [d for d in validate_paths([specs]) if d.severity == "error"]
    assert errors == [], render_all(errors)


# -- --set --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("candidates.n=9", ("candidates.n", 9)),
        ("params.t=0.5", ("params.t", 0.5)),
        ("models.judge.model=gpt-4o", ("models.judge.model", "gpt-4o")),
        ('a.candidates=["x", "y"]', ("a.candidates", ["x", "y"])),
        ("a.flag=true", ("a.flag", True)),
        ("a.prompt=", ("a.prompt", "")),
        ("a.prompt=x=y", ("a.prompt", "x=y")),
    ],
)
def test_parse_set(text: str, expected: tuple) -> None:
    assert parse_set(text) == expected


@pytest.mark.parametrize("text", ["noequals", "=5", "a..b=1", ".a=1", "a. b=1"])
def test_parse_set_malformed(text: str) -> None:
    with pytest.raises(UsageError):
        parse_set(text)


def _data():
    return load_document("s.yaml", BASE).data


def test_apply_sets_paths() -> None:
    data = _data()
    apply_sets(data, {"params.n": 9, "models.m.temperature": 0.2, "b.n": 4, "nodes.a.prompt": "x",
                      "name": "renamed", "a.system": "be brief"})
    assert data["params"]["n"] == 9 and data["models"]["m"]["temperature"] == 0.2
    assert data["nodes"]["b"]["n"] == 4 and data["nodes"]["a"]["prompt"] == "x"
    assert data["name"] == "renamed" and data["nodes"]["a"]["system"] == "be brief"


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("params.nn", "did you mean 'n'?"),
        ("params.fresh", "unknown param 'fresh'"),
        ("bb.n", "did you mean 'b'?"),
        ("nodes.zz.n", "unknown node 'zz'"),
        ("models.mm.temperature", "did you mean 'm'?"),
        ("inputs.qq.default", "did you mean 'q'?"),
        ("nmae", "did you mean 'name'?"),
        ("b", "name a field"),
        ("a.prompt.x", "not a mapping"),
    ],
)
def test_apply_sets_errors(path: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        apply_sets(_data(), {path: 1})
    assert needle in str(info.value)


def test_sets_flow_into_validation(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE)
    _, spec = load_spec(path, {"params.n": 7, "b.n": 2})
    assert spec.params["n"] == 7 and spec.nodes["b"].n == 2
    with pytest.raises(SpecInvalid) as info:
        load_spec(path, {"params.n": 0})
    assert [d.code for d in info.value.diagnostics] == ["E302"]
    with pytest.raises(SpecInvalid) as info:
        load_spec(path, {"a.promt": "typo"})  # absent field on an existing node: the schema judges it
    assert [d.code for d in info.value.diagnostics] == ["E110"]
    with pytest.raises(UsageError):
        load_spec(path, {"params.nope": 1})


# -- rendering ------------------------------------------------------------------------------------------
def test_render_text_json_github() -> None:
    diags = validate_paths([INVALID / "e113_unknown_op.yaml"])
    path = str(INVALID / "e113_unknown_op.yaml")
    assert render_all(diags) == (f"{path}:8:9: error: unknown op 'ensembel' in node 'a'; "
                                 "did you mean 'ensemble'? [E113]")
    (item,) = json.loads(render_all(diags, "json"))
    assert item == {"file": path, "line": 8, "column": 9, "code": "E113", "name": "unknown-op", "severity": "error",
                    "message": "unknown op 'ensembel' in node 'a'", "hint": "did you mean 'ensemble'?"}
    assert render_all(diags, "github") == (f"::error file={path},line=8,col=9,title=E113::unknown op "
                                           "'ensembel' in node 'a'; did you mean 'ensemble'?")


def test_hints_for_bare_input_names_and_reserved_ids(tmp_path: Path) -> None:
    text = render_all(_check(tmp_path, BASE.replace('"{{ a.answer }}"', '"{{ q }} ${q.x}"')))
    assert "did you mean 'inputs.q'?" in text and "did you mean '${inputs.q}'?" in text
    diags = _check(tmp_path, BASE.replace("nodes:\n", "nodes:\n  params: {op: vote, candidates: []}\n"))
    assert ("E112", 8, 3) in [(d.code, d.line, d.column) for d in diags]


def test_unusable_paths_are_diagnostics(tmp_path: Path) -> None:
    text = ('ember: 1\nname: x\nnodes:\n  a: {op: network, spec: "a\\0b"}\n  b: {op: network, spec: "'
            + "x" * 5000 + '"}\noutputs: {v: "${a.x}"}\n')
    assert _codes(_check(tmp_path, text)) == ["E304", "E304"]
    assert _codes(validate_paths(["a\0b"])) == ["E104"]

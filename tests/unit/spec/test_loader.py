"""Loading YAML/JSON safely with positions (ember_compiler/spec/loader.py)."""

from __future__ import annotations

import pytest

from ember_compiler.errors import SpecInvalid
from ember_compiler.spec.diagnostics import Diagnostic
from ember_compiler.spec.loader import load_document, to_plain

SPEC = """\
ember: 1
name: demo
nodes:
  a:
    op: generate
    model: m
    prompt: |
      Line one
      Hello {{ inputs.q }}
    list: [x, "${a.text}", z]
  b:
    op: vote
    candidates: ["${a.answer}"]
    note: plain ${a.text} here
outputs: {t: "${b.answer}"}
"""


def _problem(text: str, name: str = "s.yaml") -> Diagnostic:
    with pytest.raises(SpecInvalid) as info:
        load_document(name, text)
    assert len(info.value.diagnostics) >= 1
    return info.value.diagnostics[0]


def test_positions_of_values_and_keys() -> None:
    doc = load_document("s.yaml", SPEC)
    assert doc.position(("name",)) == (2, 7)
    assert doc.key_position(("name",)) == (2, 1)
    assert doc.position(("nodes", "a", "model")) == (6, 12)
    assert doc.key_position(("nodes", "a", "model")) == (6, 5)
    assert doc.position(("nodes", "a", "list", 1)) == (10, 15)
    assert doc.key_position(("nodes", "b")) == (11, 3)
    assert doc.position(("nodes", "b", "candidates", 0)) == (13, 18)


def test_position_of_missing_path_is_deepest_ancestor() -> None:
    doc = load_document("s.yaml", SPEC)
    assert doc.position(("nodes", "a", "nope", "deeper")) == doc.position(("nodes", "a"))
    assert doc.key_position(("nodes", "zz")) == doc.key_position(("nodes",)) == (3, 1)
    assert doc.position(()) == (1, 1)


def test_discriminator_segment_is_skipped() -> None:
    # pydantic puts the union tag into loc: ('nodes', 'a', 'generate', 'model')
    doc = load_document("s.yaml", SPEC)
    assert doc.position(("nodes", "a", "generate", "model")) == (6, 12)


def test_string_positions_inside_scalars() -> None:
    doc = load_document("s.yaml", SPEC)
    prompt = doc.data["nodes"]["a"]["prompt"]
    off = prompt.index("inputs")
    assert doc.string_position(("nodes", "a", "prompt"), off, "inputs") == (9, 16)
    note = doc.data["nodes"]["b"]["note"]
    assert doc.string_position(("nodes", "b", "note"), note.index("${"), "${a.text}") == (14, 17)
    quoted = doc.data["nodes"]["a"]["list"][1]
    assert doc.string_position(("nodes", "a", "list", 1), 0, quoted) == (10, 16)
    # a needle that does not match the source falls back to the value start
    assert doc.string_position(("nodes", "b", "note"), 3, "XYZ") == doc.position(("nodes", "b", "note"))


def test_line_in_block_string() -> None:
    doc = load_document("s.yaml", SPEC)
    assert doc.line_in_string(("nodes", "a", "prompt"), 2) == (9, 7)


def test_diag_renders_with_path_and_position() -> None:
    doc = load_document("dir/s.yaml", SPEC)
    d = doc.diag(("nodes", "a", "model"), "E401", "undefined model 'm'", "did you mean 'w'?")
    assert d.render() == "dir/s.yaml:6:12: error: undefined model 'm'; did you mean 'w'? [E401]"
    assert doc.diag(("nodes", "a", "model"), "E110", "x", key=True).column == 5


def test_json_loads_with_positions_and_tabs(tmp_path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{\n\t"ember": 1,\n\t"nodes": {\n\t\t"a": {"op": "vote"}\n\t}\n}\n')
    doc = load_document(path)
    assert doc.data["nodes"]["a"]["op"] == "vote"
    assert doc.position(("nodes", "a", "op")) == (4, 15)
    assert doc.key_position(("ember",)) == (2, 2)


def test_yaml_12_semantics_and_plain_values() -> None:
    doc = load_document("s.yaml", "a: no\nb: 2024-01-01\nc: !!str 12\nd: 0x10\ne: 1.5\nf: [true]\n")
    plain = to_plain(doc.data)
    assert plain == {"a": "no", "b": "2024-01-01", "c": "12", "d": 16, "e": 1.5, "f": [True]}
    assert [type(v) for v in plain.values()] == [str, str, str, int, float, list]


def test_bom_is_accepted(tmp_path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfember: 1\n")
    assert load_document(path).data == {"ember": 1}


@pytest.mark.parametrize(
    ("text", "line", "col", "code"),
    [
        ("a: 1\nb: [1, 2\nc: 3\n", 3, 2, "E100"),
        ("a: b: c\n", 1, 5, "E100"),
        ("a: 1\n---\nb: 2\n", 2, 1, "E100"),
        ("a: *nope\n", 1, 4, "E100"),
        ("a: x\x00y\n", 1, 5, "E100"),
        ("x: 1\ny:\n  z: 1\n  z: 2\n", 4, 3, "E101"),
        ("a: !!python/object/apply:os.system [ls]\n", 1, 4, "E102"),
        ("a: !!python/name:os.system\n", 1, 4, "E102"),
        ("a: !custom {x: 1}\n", 1, 4, "E102"),
        ("a: !!binary aGVsbG8=\n", 1, 4, "E102"),
        ("a: !!set {x}\n", 1, 4, "E102"),
        ("", 1, 1, "E103"),
        ("# only a comment\n", 1, 1, "E103"),
        ("- a\n- b\n", 1, 1, "E103"),
        ("just a string\n", 1, 1, "E103"),
        ("a: " + "[" * 80 + "]" * 80 + "\n", 1, 68, "E103"),
        ("1: a\n", 1, 1, "E112"),
    ],
)
def test_load_problems(text: str, line: int, col: int, code: str) -> None:
    d = _problem(text)
    assert (d.line, d.column, d.code) == (line, col, code), d.render()


def test_duplicate_key_names_first_definition() -> None:
    d = _problem("name: a\nember: 1\nname: b\n")
    assert d.code == "E101" and "'name'" in d.message and "line 1" in d.message


def test_billion_laughs_is_rejected_quickly() -> None:
    rows = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, cur in zip("abcdefg", "bcdefgh", strict=True):
        rows.append(f"{cur}: &{cur} [" + ", ".join(f"*{prev}" for _ in range(10)) + "]")
    d = _problem("\n".join(rows) + "\n")
    assert d.code == "E103" and "alias" in d.message


def test_recursive_alias_does_not_hang() -> None:
    try:
        load_document("s.yaml", "a: &x {b: *x}\n")
    except SpecInvalid as e:
        assert e.diagnostics[0].code == "E103"


def test_deep_nesting_is_a_diagnostic() -> None:
    d = _problem("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert d.code in ("E100", "E103")


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe\x00\x01garbage", b"ember: 1\nname: \xc3\x28\n", bytes(range(256)), b"\x00" * 64],
)
def test_binary_and_undecodable_files(tmp_path, raw: bytes) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(raw)
    with pytest.raises(SpecInvalid) as info:
        load_document(path)
    d = info.value.diagnostics[0]
    assert d.code == "E100" and d.file == str(path) and d.line >= 1 and d.column >= 1


def test_undecodable_position_points_at_the_byte(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"ember: 1\nname: \xc3\x28\n")
    with pytest.raises(SpecInvalid) as info:
        load_document(path)
    assert (info.value.diagnostics[0].line, info.value.diagnostics[0].column) == (2, 7)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(SpecInvalid) as info:
        load_document(tmp_path / "nope.yaml")
    assert info.value.diagnostics[0].code == "E104"


def test_text_argument_is_used_instead_of_the_file(tmp_path) -> None:
    doc = load_document(tmp_path / "never-written.yaml", "ember: 1\n")
    assert doc.data == {"ember": 1} and doc.path == tmp_path / "never-written.yaml"


def test_json_surrogate_pairs_are_joined_and_lone_ones_rejected(tmp_path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"a": "smile \\ud83d\\ude00", "b": ["\\u00e9"]}')
    assert to_plain(load_document(path).data) == {"a": "smile \U0001f600", "b": ["\u00e9"]}
    path.write_text('{\n  "a": "bad \\ud800"\n}')
    with pytest.raises(SpecInvalid) as info:
        load_document(path)
    d = info.value.diagnostics[0]
    assert (d.code, d.line, d.column) == ("E100", 2, 8)

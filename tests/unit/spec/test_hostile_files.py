"""Issue #17 rows 6, 7 and 21: validation reads only regular files, within a size limit, never a file
outside the spec's folder unless allowed, and never quotes another file's content (the CLI side:
tests/unit/cli/test_hostile_specs_cli.py)."""

from __future__ import annotations

import pytest

from ember_compiler.compiler.check import validate_paths
from ember_compiler.spec.diagnostics import render_all as render
from ember_compiler.spec.limits import Limits
from ember_compiler.spec.loader import MAX_TOKENS

SECRET = "OPENAI_API_KEY=sk-live-0123456789abcdefghijklmnop"
SPEC = """ember: 1
name: host
inputs: {{question: string}}
nodes:
  inner: {{op: network, spec: "{target}"}}
outputs: {{a: "${{inner.answer}}"}}
"""


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """The working directory is an empty folder: tmp_path (the secrets) is outside it."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def _codes(diags) -> list[str]:
    return [d.code for d in diags if d.severity == "error"]


def test_devices_are_refused_before_reading():
    (diag,) = validate_paths(["/dev/zero"])
    assert diag.code == "E104" and "character device" in diag.message


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("ember: 1\nname: big\nnote: " + "x" * 2_000_000 + "\n")
    (diag,) = validate_paths([spec])  # the default limit is 2,000,000 bytes
    assert diag.code == "E104" and "--max-spec-bytes" in diag.message
    small = tmp_path / "small.yaml"
    small.write_text("ember: 1\nname: small\nnote: " + "x" * 5_000 + "\n")
    assert _codes(validate_paths([small], limits=Limits(spec_bytes=1_000))) == ["E104"]
    assert "E104" not in _codes(validate_paths([small], limits=Limits(spec_bytes=10_000)))


@pytest.mark.parametrize("body", [
    "params: {xs: [" + ",".join(["1"] * (MAX_TOKENS + 10)) + "]}\n",  # a long list
    "# a comment line\n" * (MAX_TOKENS + 10),  # ruamel's comment handling is quadratic
])
def test_a_file_with_too_many_values_is_refused_before_parsing(tmp_path, body):
    spec = tmp_path / "list.yaml"
    spec.write_text("ember: 1\nname: l\n" + body)
    (diag,) = validate_paths([spec])
    assert diag.code == "E103" and f"more than {MAX_TOKENS} values" in diag.message


def test_one_long_comment_parses_in_one_slice(tmp_path):
    spec = tmp_path / "comment.yaml"  # char by char, ruamel took 25 s on a 640 kB comment
    spec.write_text("ember: 1\nname: c  # " + "x" * 1_500_000 + "\nnodes: {}\noutputs: {}\n")
    diags = validate_paths([spec])
    assert "E103" not in _codes(diags) and "E104" not in _codes(diags)


def test_a_subspec_outside_the_folder_is_refused_and_never_read(tmp_path):
    secret = tmp_path / ".env"
    secret.write_text(SECRET + "\n")
    project = tmp_path / "project"
    project.mkdir()
    spec = project / "spec.yaml"
    spec.write_text(SPEC.format(target=secret))
    diags = validate_paths([spec])
    assert _codes(diags) == ["E313"]
    for fmt in ("text", "json", "github"):
        assert "sk-live" not in render(diags, fmt)


def test_an_allowed_subspec_that_is_not_a_spec_is_reported_by_path_and_code_only(tmp_path):
    secret = tmp_path / ".env"
    secret.write_text(SECRET + "\n")
    (tmp_path / "project").mkdir()
    spec = tmp_path / "project" / "spec.yaml"
    spec.write_text(SPEC.format(target=secret))
    diags = validate_paths([spec], limits=Limits(allow_outside=True))
    assert _codes(diags) == ["E304"] and str(secret) in diags[0].message and "E103" in diags[0].message
    for fmt in ("text", "json", "github"):
        assert "sk-live" not in render(diags, fmt) and "OPENAI" not in render(diags, fmt)


def test_a_symlink_inside_the_folder_that_points_outside_is_refused(tmp_path):
    (tmp_path / "secret.yaml").write_text(SECRET + "\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "sub.yaml").symlink_to(tmp_path / "secret.yaml")
    spec = project / "spec.yaml"
    spec.write_text(SPEC.format(target="sub.yaml"))
    assert _codes(validate_paths([spec])) == ["E313"]


def test_a_symlink_loop_as_subspec_is_a_clear_diagnostic(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(target="a.yaml"))
    (diag,) = validate_paths([spec])
    assert diag.code == "E304" and "loop" in diag.message.lower()

"""The diagnostics registry (`ember_compiler/spec/codes.py`) and `ember explain` (fixtures per code: test_validate)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.compiler import check
from ember_compiler.errors import UsageError
from ember_compiler.spec.codes import CODES, all_codes, codes_markdown, explain_text, lookup
from ember_compiler.spec.diagnostics import Diagnostic, render_all
from ember_compiler.spec.loader import load_document

ROOT = Path(__file__).resolve().parents[3]
CODE_LITERAL = re.compile(r"""["']([EW]\d{3})["']""")


def test_every_code_literal_in_the_source_is_registered() -> None:
    """A code emitted anywhere (even on a path no fixture reaches) must be in the registry."""
    found: dict[str, str] = {}
    for folder in ("ember_compiler", "cli"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "codes.py":
                continue
            for code in CODE_LITERAL.findall(path.read_text()):
                found.setdefault(code, str(path.relative_to(ROOT)))
    assert len(found) >= 30  # the scan sees the emitting modules
    unknown = {code: where for code, where in found.items() if code not in CODES}
    assert not unknown, f"codes emitted but not registered in spec/codes.py: {unknown}"


def test_an_unregistered_code_cannot_be_emitted() -> None:
    with pytest.raises(ValueError, match="'E777' is not registered"):
        Diagnostic("s.yaml", 1, 1, "E777", "nope")
    with pytest.raises(ValueError, match="registered as a warning"):
        Diagnostic("s.yaml", 1, 1, "W201", "unused", severity="error")
    assert Diagnostic("s.yaml", 1, 1, "W201", "unused", severity="warning").name == "unused-node"


def test_registry_entries_are_complete_and_consistent() -> None:
    codes = all_codes()
    assert [c.code for c in codes] == sorted(CODES, key=lambda k: (k[0] != "E", k))
    assert len({c.name for c in codes}) == len(codes)
    for c in codes:
        assert re.fullmatch(r"[EW]\d{3}", c.code) and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", c.name), c
        assert c.severity == ("warning" if c.code[0] == "W" else "error"), c
        assert c.summary and len(c.why) > 40 and c.fix, c
        if c.code != "E999":
            assert "# before" in c.fix and "# after" in c.fix, f"{c.code}: fix has no before/after snippet"


def _after_snippet(fix: str) -> str:
    block = fix.split("# after", 1)[1].split("\n\n", 1)[0]
    return textwrap.dedent(block.split("\n", 1)[1]) if "\n" in block else ""


@pytest.mark.parametrize("code", [c for c in CODES if c not in ("E104", "E999")])  # E104's is a command line
def test_fix_snippets_are_yaml_ember_reads(code: str) -> None:
    snippet = _after_snippet(CODES[code].fix)
    assert snippet.strip(), code
    assert isinstance(load_document("fix.yaml", snippet).data, dict)  # raises SpecInvalid on a broken snippet


def test_lookup_by_code_or_name_and_did_you_mean() -> None:
    assert lookup("E201") is lookup("e201") is lookup(" unknown-node ") is CODES["E201"]
    with pytest.raises(UsageError, match=r"unknown diagnostic code 'E2011'; did you mean 'E201 unknown-node'\?"):
        lookup("E2011")
    with pytest.raises(UsageError, match=r"did you mean 'E202 unknown-port'\?"):
        lookup("unknown-prot")
    with pytest.raises(UsageError, match="ember explain --all"):
        lookup("zzz")


def test_explain_text_has_every_part() -> None:
    text = explain_text("E201")
    c = CODES["E201"]
    assert text.startswith("E201 unknown-node (error)\n\nreference to an unknown node\n")
    assert "Why is this a problem?" in text and "How to fix it" in text
    assert "does not exist" in text and "${candidates.responses}" in text
    assert c.fix.splitlines()[-1] in text  # the snippet is kept line by line
    assert explain_text("W201").startswith("W201 unused-node (warning)")


def test_codes_markdown() -> None:
    md = codes_markdown()
    rows = md.strip().splitlines()
    assert rows[0] == "| code | name | severity | summary |" and len(rows) == len(CODES) + 2
    assert "| `W201` | `unused-node` | warning | node that no output depends on (it will be pruned) |" in rows
    assert all(row.count(" | ") == 3 for row in rows[2:])  # a `|` in a summary is escaped


def test_check_module_has_no_copy_of_the_table() -> None:
    assert check.__doc__ and "spec/codes.py" in check.__doc__
    assert not re.search(r"(?m)^[EW]\d{3}\s", check.__doc__)


def test_json_diagnostics_carry_the_name_and_text_is_unchanged() -> None:
    d = Diagnostic("s.yaml", 3, 5, "E113", "unknown op 'x' in node 'a'", "did you mean 'vote'?")
    assert render_all([d]) == "s.yaml:3:5: error: unknown op 'x' in node 'a'; did you mean 'vote'? [E113]"
    (item,) = json.loads(render_all([d], "json"))
    assert item["code"] == "E113" and item["name"] == "unknown-op"


# -- ember explain --------------------------------------------------------------------------------------
@pytest.fixture()
def ember():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_explain_prints_one_code(ember) -> None:
    result = ember("explain", "E304")
    assert result.exit_code == 0, result.output
    assert result.stdout == explain_text("E304") and "bad-subspec" in result.stdout
    assert ember("explain", "bad-subspec").stdout == result.stdout


def test_explain_unknown_code_exits_2_with_a_suggestion(ember) -> None:
    result = ember("explain", "E31")
    assert result.exit_code == 2
    assert "unknown diagnostic code 'E31'; did you mean" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_explain_all_lists_every_code_one_per_line(ember) -> None:
    result = ember("explain", "--all")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [c.code for c in all_codes()]
    assert [line.split()[1] for line in lines] == [c.name for c in all_codes()]
    assert re.fullmatch(r"E201 +unknown-node +reference to an unknown node", next(x for x in lines if "E201" in x))


@pytest.mark.parametrize("args", [(), ("E201", "--all")])
def test_explain_needs_exactly_one_of_code_or_all(ember, args) -> None:
    result = ember("explain", *args)
    assert result.exit_code == 2 and "--all" in result.output

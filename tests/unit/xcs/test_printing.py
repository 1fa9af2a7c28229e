"""Plan printing: text (golden), Mermaid and DOT (golden + syntax sanity).

Goldens live next to each case: ``tests/cases/compile/NAME.yaml`` -> ``NAME.plan.txt``,
``NAME.mmd``, ``NAME.dot``. Regenerate with ``EMBER_UPDATE_GOLDENS=1 pytest tests/unit/xcs/test_printing.py``
and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ember_compiler.testing.cases import CASES, compile_case
from ember_compiler.xcs.plan import Plan, PlanNode
from ember_compiler.xcs.printing import edges, expr_text, to_dot, to_mermaid, to_text

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.usefixtures("at_repo_root")

CASE_NAMES = sorted(p.stem for p in (ROOT / CASES).glob("*.yaml"))
RENDERERS = {".plan.txt": to_text, ".mmd": to_mermaid, ".dot": to_dot}


@pytest.mark.parametrize("suffix", list(RENDERERS))
@pytest.mark.parametrize("case", CASE_NAMES)
def test_golden(case, suffix):
    got = RENDERERS[suffix](compile_case(case)) + "\n"
    golden = ROOT / CASES / f"{case}{suffix}"
    if os.environ.get("EMBER_UPDATE_GOLDENS") or not golden.exists():
        golden.write_text(got)
        if not os.environ.get("EMBER_UPDATE_GOLDENS"):
            pytest.fail(f"wrote missing golden {golden.name}; review and commit it")
    assert got == golden.read_text()


def test_text_form_of_the_design_example():
    text = to_text(compile_case("ensemble_judge"))
    lines = text.splitlines()
    assert re.fullmatch(r"plan ensemble-judge  \(6 calls, depth 2, width 5\)  sha256:[0-9a-f]{12}…", lines[0])
    assert lines[1].startswith("  %candidates = llm.ensemble[model=worker n=5](%inputs.question, %inputs.choices)")
    assert lines[1].endswith(f"# {CASES}/ensemble_judge.yaml:14:3")
    assert lines[2].startswith(
        "  %final      = llm.judge[model=judge](question=%inputs.question, candidates=%candidates.responses)")
    assert lines[-1] == "  return answer=%final.answer"


def test_text_without_sources():
    text = to_text(compile_case("nested"), print_source=False)
    assert "#" not in text and ".yaml" not in text


def test_expression_forms():
    assert expr_text({"$fmt": ["Q: ", {"$in": "q"}, "\n"]}) == 'f"Q: {%inputs.q}\\n"'
    assert expr_text({"$expr": "not ok", "vars": {"ok": {"$ref": ["a/b", "x"]}}}) == 'expr("not ok", ok=%a/b.x)'
    assert expr_text({"$dict": {"k": {"$list": [{"$lit": 1}, {"$node": "n"}]}}}) == "{k: [1, %n]}"


def _awkward_plan() -> Plan:
    """Ids and params that need escaping in every format."""
    nodes = (
        PlanNode("end", "llm", "generate", inputs={"vars": {"$dict": {"inputs": {"$dict": {"q": {"$in": "q"}}}}}},
                 params={"model": "m", "n": 1, "extract": 'say "x" <b> #1 | \\d'}, outputs=("text",)),
        PlanNode("net/a-b", "fn", "first", inputs={"candidates": {"$list": [{"$ref": ["end", "text"]}]}},
                 outputs=("value",), when=({"$ref": ["end", "text"]},)),
        PlanNode("net/a_b", "fn", "first", inputs={"candidates": {"$ref": ["net/a-b", "value"]}},
                 outputs=("value",), when=({"$in": "q"},)),
    )
    return Plan("awk-ward", nodes, inputs={"q": {"type": "string"}},
                outputs={"end": {"$ref": ["net/a_b", "value"]}}, models={})


MERMAID_ID = r"(in|node|out)_[A-Za-z0-9_]+"
MERMAID_LINE = re.compile(
    rf'^  (?:{MERMAID_ID}(?:\[/"[^"]*"/\]|\(\["[^"]*"\]\)|\["[^"]*"\]|\[\\"[^"]*"\\\])'
    rf"|{MERMAID_ID} (?:-->|-\.->)(?:\|[^|]*\|)? {MERMAID_ID}"
    r"|classDef llm .*|class [A-Za-z0-9_,]+ llm)$"
)


@pytest.mark.parametrize("case", ["awkward", "nested", "ops", "refine"])
def test_mermaid_is_well_formed(case):
    plan = _awkward_plan() if case == "awkward" else compile_case(case)
    lines = to_mermaid(plan).splitlines()
    assert lines[0] == "flowchart TD"
    for line in lines[1:]:
        assert MERMAID_LINE.match(line), line
    declared = {m.group(1) for line in lines if (m := re.match(rf"^  ({MERMAID_ID})[\[(]", line))}
    edges = [line for line in lines if " --> " in line or " -.-> " in line or "-->|" in line]
    ends = {e for line in edges for e in (line.split()[0], line.split()[-1])}
    assert edges and ends <= declared
    assert len(declared) == len(plan.inputs) + len(plan.nodes) + len(plan.outputs)  # no id collisions


def test_mermaid_shapes_and_edges():
    text = to_mermaid(_awkward_plan())
    assert 'node_end(["end<br/>llm.generate[extract=#quot;say \\#quot;x\\#quot; #lt;b#gt; #35;1 #124; ' in text
    assert "node_net_2fa_2db" in text and "node_net_2fa__b" in text
    assert "node_end -.->|text| node_net_2fa_2db" not in text  # also read by an input: a plain edge
    assert "node_end -->|text| node_net_2fa_2db" in text
    assert "in_q -.-> node_net_2fa__b" in text  # read only by the guard


def test_dot_is_well_formed():
    text = to_dot(_awkward_plan())
    assert text.startswith('digraph "awk-ward" {\n') and text.endswith("\n}")
    string = r'"(?:[^"\\]|\\.)*"'
    stmt = re.compile(rf"^  (?:rankdir=TB;|node \[.*\];|{string}(?: -> {string})?(?: \[.*\])?;)$")
    for line in text.splitlines()[1:-1]:
        assert stmt.match(line), line
    assert '"in:q" -> "net/a_b" [style=dashed];' in text
    assert '"end" [label="end\\nllm.generate[extract=\\"say \\\\\\"x\\\\\\" <b> #1 | \\\\\\\\d\\" model=m n=1]"' in text


@pytest.mark.needs("dot")
@pytest.mark.parametrize("case", CASE_NAMES)
def test_dot_parses_as_graphviz(case):
    import pydot

    plan = compile_case(case)
    [graph] = pydot.graph_from_dot_data(to_dot(plan))
    assert len(graph.get_edges()) == sum(1 for _ in edges(plan))


def test_golden_files_have_a_case():
    stems = {p.name.split(".")[0] for p in (ROOT / CASES).iterdir() if p.is_file() and p.suffix != ".yaml"}
    assert stems <= set(CASE_NAMES)


"""Issue #17 row 12: no template takes unbounded time or memory, in validate (no constant folding)
or at run time (operation, size and time limits in the sandbox)."""

from __future__ import annotations

import pytest

from ember_compiler import api, templates
from ember_compiler.compiler.check import validate_paths
from ember_compiler.templates import MAX_ITEMS, TemplateLimit

HOSTILE = [
    "{{ 9**999999999 }}",
    "{{ 'a'*10**9 }}",
    "{{ (['a'*10**6]*10000)|join }}",
    "{{ ['x']*10**8 }}",
    "{{ 'a'|center(1000000000) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ '%01000000000d' % 1 }}",
    "{{ '{:>1000000000}'.format('x') }}",
    "{{ lipsum(n=100000000) }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
]


def _spec(tmp_path, prompt: str):
    spec = tmp_path / "t.yaml"
    escaped = prompt.replace("'", "''")
    spec.write_text("ember: 1\nname: t\ninputs: {question: string}\nmodels: {w: {provider: sim}}\n"
                    f"nodes:\n  g: {{op: generate, model: w, prompt: '{escaped}'}}\noutputs: {{a: '${{g.answer}}'}}\n")
    return spec


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_templates_are_refused_with_a_clear_error(source):
    with pytest.raises(TemplateLimit):
        templates.render(source, {})


def test_compiling_folds_no_constants():
    # Jinja used to evaluate `9**999999999` while compiling: `ember validate` and the first run hung
    templates.compiled("{{ 9**999999999 }} {{ 'a'|center(1000000000) }} {{ 'a' * 10**9 }}")


def test_a_loop_without_output_stops_at_the_render_deadline(monkeypatch):
    monkeypatch.setattr(templates, "RENDER_SECONDS", 0.0)  # every check is past the deadline
    with pytest.raises(TemplateLimit, match="to render"):
        templates.render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {})


def test_ordinary_templates_render_as_before():
    source = ("{{ 2**10 }} {{ 'ab'*3 }} {{ '%05d' % 42 }} {{ '%d'|format(12345678) }} {{ 'q'|center(5) }} "
              "{{ range(3)|join(',') }}{% for x in items %}{{ loop.index }}{{ x }}{% endfor %} {{ 'a' ~ 'b' }}")
    assert templates.render(source, {"items": ["p", "q"]}) == "1024 ababab 00042 12345678   q   0,1,21p2q ab"
    assert templates.render("{{ 'x' * n }}", {"n": MAX_ITEMS}) == "x" * MAX_ITEMS


def test_validate_accepts_and_run_refuses_a_hostile_prompt(tmp_path):
    spec = _spec(tmp_path, "{{ 9**999999999 }} {{ inputs.question }}")
    assert [d for d in validate_paths([spec]) if d.severity == "error"] == []
    result = api.run(spec, {"question": "q"}, api.RunOptions(runs_dir=None))
    assert "is over 100,000 bits" in result.error and "node 'g'" in result.error

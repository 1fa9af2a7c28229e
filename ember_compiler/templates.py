"""Jinja2 in a sandbox: the one place templates are parsed and rendered.

Templates come from specs (trusted like a Makefile); values (inputs, model outputs, dataset fields)
are only ever passed as variables, never rendered as template source.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RENDERED_CHARS = 1_000_000

_env = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


def environment() -> ImmutableSandboxedEnvironment:
    return _env


def parse(source: str) -> nodes.Template:
    """Parse a template; raises jinja2.TemplateSyntaxError (with .lineno) on bad syntax."""
    return _env.parse(source)


def variables(source: str) -> set[str]:
    """Top-level names a template reads (`{{ candidates.responses }}` reads `candidates`)."""
    return set(meta.find_undeclared_variables(parse(source)))


def expression_variables(source: str) -> set[str]:
    """Top-level names a `when:` expression reads."""
    return variables("{{ (" + source + ") }}")


@lru_cache(maxsize=4096)
def compiled(source: str):
    return _env.from_string(source)


@lru_cache(maxsize=4096)
def compiled_expression(source: str):
    return _env.compile_expression(source, undefined_to_none=False)


def render(source: str, context: dict[str, Any]) -> str:
    text = compiled(source).render(context)
    if len(text) > MAX_RENDERED_CHARS:
        raise ValueError(f"rendered template is {len(text)} characters (limit {MAX_RENDERED_CHARS})")
    return text


def evaluate(source: str, context: dict[str, Any]) -> Any:
    return compiled_expression(source)(**context)

"""`ember explain CODE`: what a diagnostic code means, why it is a problem and how to fix it."""

from __future__ import annotations

from typing import Annotated

import typer

from ember_compiler.spec.codes import all_codes, explain_text

from . import output
from .app import app, errors


@app.command()
def explain(
    code: Annotated[str | None, typer.Argument(help="A diagnostic code (E201) or its name (unknown-node).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="List every code, one per line.")] = False,
) -> None:
    """Explain a diagnostic code of `ember validate`: its name, summary, why, and how to fix it."""
    if (code is None) == (not all_):
        raise typer.BadParameter("give one code such as E201, or --all to list them all", param_hint="CODE")
    with errors():
        output.print_text(_listing() if all_ else explain_text(code or ""))


def _listing() -> str:
    """One code a line: `E201  unknown-node  reference to an unknown node`."""
    codes = all_codes()
    width = max(len(c.name) for c in codes)
    return "\n".join(f"{c.code}  {c.name:<{width}}  {c.summary}" for c in codes)

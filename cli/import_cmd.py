"""`ember import archon`: an Archon JSON layer config as an Ember spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ember_compiler import api

from . import output
from .app import app, errors

import_app = typer.Typer(help="Convert another system's architecture config into an Ember spec.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command()
def archon(
    config: Annotated[Path, typer.Argument(help="The Archon config (JSON: name and layers of components).")],
    out: Annotated[Path | None, typer.Option("-o", "--output", help="Write the spec here (default: stdout).")] = None,
    sim: Annotated[bool, typer.Option("--sim", help="Bind every model to the sim provider, to study the "
                                                    "architecture at no cost first.")] = False,
) -> None:
    """Convert an Archon config (generator, fuser, ranker, critic, verifier layers) into a spec."""
    with errors():
        result = api.import_archon(config, out, sim=sim)
        if out is None:
            output.print_text(result.text.rstrip("\n"))
        for note in result.notes:
            output.warning(note)
        archon = "depends on the verdicts" if result.archon_calls is None else f"{result.archon_calls}"
        where = f"wrote {out}: " if out is not None else ""
        output.note(f"{where}{len(result.spec['nodes'])} nodes; calls per query: Archon {archon}, "
                    f"this spec {result.ember_calls}")

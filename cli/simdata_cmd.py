"""`ember sim-data`: write an easy/hard mixture dataset for the sim provider."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ember_compiler import api

from . import output
from .app import app, errors


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter("expects numbers separated by commas, e.g. 6,1,1", param_hint=what) from None


@app.command(name="sim-data")
def sim_data(
    out: Annotated[Path, typer.Option("-o", "--output", help="Write the JSONL dataset here ('-' for stdout).")],
    rows: Annotated[int, typer.Option(min=1, help="Number of rows.")] = 1000,
    alpha: Annotated[float, typer.Option(help="Fraction of easy rows.")] = 0.6,
    p_easy: Annotated[float, typer.Option("--p-easy", help="P(one generation is right) on easy rows.")] = 0.8,
    p_hard: Annotated[float, typer.Option("--p-hard", help="P(one generation is right) on hard rows.")] = 0.3,
    choices: Annotated[str, typer.Option(help="Answer space, comma-separated.")] = "A,B,C,D",
    wrong_weights: Annotated[str | None, typer.Option(
        "--wrong-weights", help="Hard rows: weights of the wrong choices (in --choices order, the right one "
                                "left out), e.g. 6,1,1; default uniform.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for answers and which rows are easy.")] = 0,
) -> None:
    """Write a sim dataset mixing easy and hard queries through per-row `sim` overrides."""
    with errors():
        data = api.sim_data(out, rows=rows, alpha=alpha, p_easy=p_easy, p_hard=p_hard,
                            choices=[c.strip() for c in choices.split(",") if c.strip()],
                            wrong_weights=_floats(wrong_weights, "--wrong-weights"), seed=seed)
        if str(out) != "-":
            easy = sum(r["kind"] == "easy" for r in data)
            output.note(f"wrote {out}: {len(data):,} rows ({easy:,} easy at p={p_easy:g}, "
                        f"{len(data) - easy:,} hard at p={p_hard:g})")

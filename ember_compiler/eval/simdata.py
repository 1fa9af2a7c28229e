"""Datasets for the sim provider: a mixture of easy and hard queries (DESIGN §3 per-row overrides).

Easy rows: one generation is right with probability `p_easy`, wrong answers uniform. Hard rows: right
with `p_hard`, wrong answers weighted by `wrong_weights` — when one wrong answer is more likely than the
right one, a majority vote over more calls converges to it, so more calls *hurt* on those rows. A
fraction `alpha` of the rows is easy (exactly round(alpha·rows), at seeded random positions).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ..errors import UsageError


def sim_rows(*, rows: int, alpha: float, p_easy: float, p_hard: float, choices: list[str],
             wrong_weights: list[float] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    if rows < 1:
        raise UsageError("--rows must be at least 1")
    for name, value in (("alpha", alpha), ("p-easy", p_easy), ("p-hard", p_hard)):
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--{name} must be between 0 and 1, got {value:g}")
    if len(choices) < 2 or len(set(choices)) != len(choices):
        raise UsageError("--choices needs at least two distinct choices")
    if wrong_weights is not None:
        if len(wrong_weights) != len(choices) - 1:
            raise UsageError(f"--wrong-weights needs {len(choices) - 1} weights (one per wrong choice, in the "
                             f"order of --choices with the right one left out), got {len(wrong_weights)}")
        if any(w < 0 for w in wrong_weights) or not any(wrong_weights):
            raise UsageError("--wrong-weights must be non-negative with at least one positive weight")
    rng = random.Random(seed)
    easy = set(rng.sample(range(rows), round(alpha * rows)))
    width = len(str(rows - 1))
    out = []
    for i in range(rows):
        is_easy = i in easy
        sim: dict[str, Any] = {"accuracy": p_easy if is_easy else p_hard}
        if not is_easy and wrong_weights is not None:
            sim["wrong_weights"] = list(wrong_weights)
        out.append({"id": f"q{i:0{width}d}", "question": f"Synthetic question #{i}", "choices": list(choices),
                    "answer": rng.choice(choices), "kind": "easy" if is_easy else "hard", "sim": sim})
    return out


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if str(path) == "-":
        import sys

        sys.stdout.write(text)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")

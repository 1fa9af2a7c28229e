"""All terminal output of the `ember` command: results on stdout, diagnostics and status on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_text(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def warning(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def note(message: str) -> None:
    err.print(message, markup=False, style="dim")


def value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def usage_line(calls: int, input_tokens: int, output_tokens: int, cost: float | None, wall_s: float) -> str:
    cost_text = "cost unknown" if cost is None else f"${cost:.4f}"
    return (f"{calls} call{'s' if calls != 1 else ''} · {input_tokens:,} tokens in / {output_tokens:,} out · "
            f"{cost_text} · {wall_s:.2f}s")


def print_outputs(result: Any) -> None:
    """A run's outputs (one per line, named when there are several), then its usage line on stderr."""
    for name, value in result.outputs.items():
        print_text(f"{name}: {value_text(value)}" if len(result.outputs) > 1 else value_text(value))
    u = result.usage
    note(usage_line(u.calls, u.input_tokens, u.output_tokens, u.cost_usd, result.wall_s)
         + (f" · {u.cache_hits:,} cached" if u.cache_hits else ""))

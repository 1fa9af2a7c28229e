"""Benchmark (not a test): `ember eval` throughput on the sim with the progress bar on.

10,000 rows x ensemble n=11 + vote, in this process, with tracing and rows.jsonl on (as `ember eval`
runs by default), and the rich progress bar forced on (a terminal Console writing to /dev/null), so its
cost is measured. Target: >= 20,000 model calls per second.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ember_cli.progress import RowProgress  # noqa: E402

from ember_compiler.compiler import compile_spec  # noqa: E402
from ember_compiler.eval.dataset import Row  # noqa: E402
from ember_compiler.eval.runner import EvalJob  # noqa: E402

SPEC = """ember: 1
name: bench-eval
inputs: {question: string}
models:
  w: {provider: sim, accuracy: 0.6}
nodes:
  e: {op: ensemble, model: w, n: 11, prompt: "Q: {{ inputs.question }}"}
  final: {op: vote, candidates: "${e.answers}"}
outputs: {answer: "${final.answer}"}
"""


def main(rows: int = 10_000) -> None:
    with tempfile.TemporaryDirectory() as d, open(os.devnull, "w") as null:
        tmp = Path(d)
        (tmp / "spec.yaml").write_text(SPEC)
        plan = compile_spec(tmp / "spec.yaml")
        data = [Row(i, str(i), {"question": f"q{i}", "answer": "ABCD"[i % 4]}) for i in range(rows)]
        console = Console(file=null, force_terminal=True, width=120)
        job = EvalJob(plan, data, runs_dir=tmp / "runs", study={"kind": "eval"})
        start = time.perf_counter()
        with RowProgress(rows, console=console) as bar:
            assert bar.live, "the progress bar must be on for this benchmark"
            result = asyncio.run(job.run(bar.update))
        wall = time.perf_counter() - start
        calls = result.usage.calls
        print(f"ember eval with the progress bar on: {rows:,} rows x ensemble n=11 + vote on the sim")
        print(f"    {calls:,} calls in {wall:.2f} s = {calls / wall:,.0f} calls/s (target >= 20,000)")
        print(f"    accuracy {result.accuracy:.4f}, rows.jsonl {len((job.run_dir / 'rows.jsonl').read_text().splitlines()):,} lines")


if __name__ == "__main__":
    main()

"""Cost-control benchmark (not a test): `python bench/cost.py` (also run by `make bench`).

A sim eval of 2,000 rows (60% easy rows at accuracy 0.8, 40% hard at 0.35 with one wrong answer
favoured, four choices) through self-consistency — an ensemble of n=15 and a majority vote — with a
price set on the sim model so cost is counted. It runs with every plan pass on (the default), then
with each pass turned off, and reports calls, requests, tokens, cost and accuracy, and whether every
row's answer is the same as with every pass on (same seed). Then it reruns the default with the
response cache forced on (`--cache`): the second run makes no calls.

The decided-vote cut-off (`vote_cutoff`) draws the samples in batches and stops once the vote is
decided: identical answers by construction, fewer output tokens and calls. Each batch is one more
request, so the prompt is billed once per batch instead of once per ensemble (visible in the input
tokens), and the batches run one after the other (more latency per row).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import Row
from ember_compiler.eval.runner import EvalJob
from ember_compiler.eval.simdata import sim_rows
from ember_compiler.runtime.cache import ResponseCache

ROWS, N, SEED = 2000, 15, 0
SPEC = f"""\
ember: 1
name: cost-bench
inputs:
  question: string
  choices: {{type: array, default: [A, B, C, D]}}
models:
  worker: {{provider: sim, accuracy: 0.6, max_tokens: 64,
           price: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}}}
nodes:
  samples:
    op: ensemble
    model: worker
    n: {N}
    prompt: |
      Answer the multiple-choice question. Think step by step, then end with "Answer: <letter>".
      Question: {{{{ inputs.question }}}}
      Choices: {{{{ inputs.choices | join(', ') }}}}
  majority: {{op: vote, candidates: "${{samples.answers}}"}}
outputs:
  answer: ${{majority.answer}}
"""


def rows() -> list[Row]:
    data = sim_rows(rows=ROWS, alpha=0.6, p_easy=0.8, p_hard=0.35, choices=["A", "B", "C", "D"],
                    wrong_weights=[6.0, 1.0, 1.0], seed=SEED)
    return [Row(i, d["id"], d) for i, d in enumerate(data)]


def run(plan: Any, data: list[Row], cache: ResponseCache | None = None) -> dict[str, Any]:
    answers: dict[int, Any] = {}
    job = EvalJob(plan, data, seed=SEED, runs_dir=None, cache=cache)
    t0 = time.perf_counter()
    result = asyncio.run(job.run(lambda r: answers.__setitem__(r["index"], r.get("outputs", {}).get("answer"))))
    u = result.usage
    return {"calls": u.calls, "requests": u.requests, "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
            "cost_usd": u.cost_usd or 0.0, "accuracy": result.accuracy, "cache_hits": u.cache_hits,
            "wall_s": time.perf_counter() - t0, "answers": answers}


def main() -> int:
    data = rows()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "cost-bench.yaml"
        spec.write_text(SPEC)
        configs = [("all passes (default)", [])] + [(f"--no-pass {p}", [p]) for p in ("vote_cutoff", "dedupe", "prune")]
        results = {name: run(compile_spec(spec, disable=off, batch=True), data) for name, off in configs}
        base = results["all passes (default)"]
        print(f"cost benchmark: {ROWS:,} sim rows x ensemble n={N} + vote, seed {SEED}")
        print(f"  {'configuration':<24} {'calls':>7} {'requests':>8} {'tokens in':>10} {'tokens out':>10} "
              f"{'cost':>9} {'accuracy':>8}  same answers")
        for name, r in results.items():
            same = r["answers"] == base["answers"]
            print(f"  {name:<24} {r['calls']:>7,} {r['requests']:>8,} {r['input_tokens']:>10,} {r['output_tokens']:>10,} "
                  f"${r['cost_usd']:>8.4f} {r['accuracy']:>8.4f}  {'yes, every row' if same else 'NO'}")
        full = results["--no-pass vote_cutoff"]
        saved = 1 - base["calls"] / full["calls"]
        print(f"  vote_cutoff: {saved:.1%} fewer calls, {1 - base['cost_usd'] / full['cost_usd']:.1%} lower cost, "
              f"answers identical on {sum(base['answers'][i] == full['answers'][i] for i in full['answers']):,} "
              f"of {ROWS:,} rows")
        cache = Path(tmp) / "cache.sqlite3"
        plan = compile_spec(spec, batch=True)
        first = run(plan, data, ResponseCache(cache, include_sim=True))
        second = run(plan, data, ResponseCache(cache, include_sim=True))
        print(f"  response cache: first run {first['calls']:,} calls, rerun {second['calls']:,} calls "
              f"({second['cache_hits']:,} cached samples), same answers: {second['answers'] == first['answers']}")
        ok = (saved >= 0.25 and full["answers"] == base["answers"] and second["calls"] == 0
              and second["answers"] == first["answers"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

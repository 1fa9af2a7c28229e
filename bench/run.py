"""Ember benchmarks (not tests): run with `make bench` or `python bench/run.py`.

(a) parallel dispatch: wall time of 16 sim calls at latency_ms=200 divided by one such call's wall
    time, in one process — both as 16 separate requests (16 parallel ensemble members) and as one
    ensemble of n=16 (which the sim serves in one request, like any provider that supports `n`);
(b) throughput: sim model calls per second through `ember eval` on 10,000 rows × ensemble n=11 + vote,
    and the peak memory of that process, next to a bare asyncio baseline measured in this process.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ember_compiler.compiler import compile_spec
from ember_compiler.runs import run_plan

ROOT = Path(__file__).resolve().parent.parent


def spec_text(nodes: str, models: str) -> str:
    return f"""ember: 1
name: bench
inputs: {{question: string}}
models:
{models}
nodes:
{nodes}
outputs: {{answer: "${{final.answer}}"}}
"""


def parallel_ratio(tmp: Path) -> dict[str, float]:
    sim = "{provider: sim, latency_ms: 200}"
    one = spec_text("  final: {op: generate, model: w0, prompt: q}", f"  w0: {sim}")
    members = "\n".join(f"  w{i}: {sim}" for i in range(16))
    wide = spec_text(
        "  e: {op: ensemble, models: [" + ", ".join(f"w{i}" for i in range(16)) + "], n: 1, prompt: q}\n"
        "  final: {op: vote, candidates: '${e.answers}'}", members)
    fused = spec_text("  e: {op: ensemble, model: w0, n: 16, prompt: q}\n"
                      "  final: {op: vote, candidates: '${e.answers}'}", f"  w0: {sim}")
    times = {}
    for name, text in [("single", one), ("16 requests", wide), ("n=16", fused)]:
        path = tmp / f"{name.replace(' ', '_').replace('=', '')}.yaml"
        path.write_text(text)
        plan = compile_spec(path)  # a single run: all 16 at once (no vote cut-off rounds)
        best = min(_timed(lambda p=plan: run_plan(p, {"question": "q"}, runs_dir=None)) for _ in range(3))
        times[name] = best
    return {"single_s": times["single"], "sixteen_requests_s": times["16 requests"], "n16_s": times["n=16"],
            "ratio_16_requests": times["16 requests"] / times["single"], "ratio_n16": times["n=16"] / times["single"]}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare_asyncio_calls_per_s(rows: int = 10_000, n: int = 11) -> float:
    """The reference point: a bare asyncio loop with one task per call, each drawing a random answer."""
    rng = random.Random(0)

    async def call() -> str:
        return "ABCD"[int(rng.random() * 4)]

    async def main() -> None:
        for _ in range(rows):
            await asyncio.gather(*(asyncio.create_task(call()) for _ in range(n)))

    return rows * n / _timed(lambda: asyncio.run(main()))


def eval_throughput(tmp: Path, rows: int = 10_000, n: int = 11, extra: tuple[str, ...] = ()) -> dict[str, float]:
    data = tmp / "rows.jsonl"
    rng = random.Random(1)
    data.write_text("".join(json.dumps({"id": i, "question": f"q{i}", "answer": rng.choice("ABCD")}) + "\n"
                            for i in range(rows)))
    spec = tmp / "sc.yaml"
    spec.write_text(spec_text(f"  e: {{op: ensemble, model: w, n: {n}, prompt: 'Q: {{{{ inputs.question }}}}'}}\n"
                              "  final: {op: vote, candidates: '${e.answers}'}", "  w: {provider: sim, accuracy: 0.6}"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-m", "ember_cli.main", "eval", str(spec), "--data", str(data), "--json",
                           *extra], capture_output=True, text=True, cwd=tmp, check=True)
    peak_kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    summary = json.loads(proc.stdout)
    return {"rows": summary["rows"], "calls": summary["calls"], "wall_s": summary["wall_s"],
            "calls_per_s": summary["calls"] / summary["wall_s"], "accuracy": summary["metrics"]["accuracy"],
            "peak_rss_mb": peak_kb / 1024}


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        a = parallel_ratio(tmp)
        print("(a) parallel dispatch, sim latency_ms=200")
        print(f"    one call                    {a['single_s']:.3f} s")
        print(f"    16 calls as 16 requests     {a['sixteen_requests_s']:.3f} s   ratio {a['ratio_16_requests']:.3f}")
        print(f"    16 calls as one n=16 request {a['n16_s']:.3f} s   ratio {a['ratio_n16']:.3f}")
        base = bare_asyncio_calls_per_s()
        print(f"(b) ember eval, 10,000 rows x ensemble n=11 + vote on the sim (bare asyncio floor: {base:,.0f}/s)")
        for label, extra in [("every sample drawn (--no-pass vote_cutoff)", ("--no-pass", "vote_cutoff")),
                             ("default (vote cut-off on)", ())]:
            b = eval_throughput(tmp, extra=extra)
            print(f"    {label}: {b['calls']:,} calls in {b['wall_s']:.2f} s = {b['calls_per_s']:,.0f} calls/s, "
                  f"accuracy {b['accuracy']:.4f}, peak RSS {b['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()

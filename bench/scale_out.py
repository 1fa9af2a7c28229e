"""Ray executor benchmarks (not tests): what running `ember eval` on Ray costs next to a local run.

One local Ray instance (`num_cpus=2`, as on this machine), four workers of half a CPU each:

- sim: 20,000 rows × (ensemble n=5 + vote), local vs Ray — wall time (Ray's includes starting the
  workers, not starting Ray) and whether the metrics are identical;
- shared gates: 3,000 rows × one call to `bench/fake_server.py` at 50 ms latency with
  `limits.concurrency: 64` — the cluster's request rate through the limits actor against a local run
  (ideal 64 / 0.05 s = 1,280 requests/s), and the most requests the server saw in flight.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from providers import KEY_ENV, FakeServer, binding  # noqa: E402

from ember_compiler.compiler import compile_spec  # noqa: E402
from ember_compiler.eval.dataset import Row  # noqa: E402
from ember_compiler.eval.ray_executor import RayOptions  # noqa: E402
from ember_compiler.eval.runner import EvalJob  # noqa: E402
from ember_compiler.eval.simdata import sim_rows  # noqa: E402

FOUR = RayOptions(workers=4, worker_cpus=0.5)
SAME = ("metrics", "ci95", "rows", "errors", "calls", "requests", "input_tokens", "output_tokens")


def timed(job: EvalJob) -> tuple[float, dict]:
    t0 = time.perf_counter()
    result = asyncio.run(job.run())
    return time.perf_counter() - t0, result.summary


def sim(rows: int = 20_000) -> None:
    plan = compile_spec(ROOT / "specs" / "sim" / "self-consistency.yaml", batch=True)
    data = sim_rows(rows=rows, alpha=0.6, p_easy=0.8, p_hard=0.3, choices=list("ABCD"), seed=1)
    todo = [Row(i, d["id"], d) for i, d in enumerate(data)]
    local_s, local = timed(EvalJob(plan, todo, runs_dir=None))
    ray_s, on_ray = timed(EvalJob(plan, todo, runs_dir=None, executor=FOUR))
    same = all(local[k] == on_ray[k] for k in SAME)
    print(f"sim: {rows:,} rows x (ensemble n=5 + vote)")
    print(f"    local        {local_s:6.2f} s  {rows / local_s:9,.0f} rows/s")
    print(f"    ray, 4 x 0.5 {ray_s:6.2f} s  {rows / ray_s:9,.0f} rows/s   metrics identical: {same}")


def shared_gates(rows: int = 3000) -> None:
    os.environ[KEY_ENV] = "bench-not-a-key"
    server = FakeServer()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "remote.yaml"
            spec.write_text("ember: 1\nname: remote\ninputs: {question: string}\nmodels:\n"
                            f"  m: {binding(server.url, {'concurrency': 64})}\n"
                            "nodes:\n  g: {op: generate, model: m, prompt: '{{ inputs.question }}'}\n"
                            "outputs: {answer: '${g.answer}'}\n")
            plan = compile_spec(spec, batch=True)
            todo = [Row(i, str(i), {"question": f"q{i}", "answer": "A"}) for i in range(rows)]
            print(f"shared gates: {rows:,} calls at 50 ms latency, limits.concurrency 64 (ideal 1,280 req/s)")
            for name, executor in (("local", "local"), ("ray, 4 x 0.5", FOUR)):
                server.reset(latency_ms=50)
                wall, summary = timed(EvalJob(plan, todo, runs_dir=None, executor=executor))
                stats = server.stats()
                print(f"    {name:12} {wall:6.2f} s  {rows / wall:6,.0f} req/s   errors {summary['errors']}, "
                      f"server saw at most {stats['max_in_flight']} in flight")
    finally:
        server.close()


def main() -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"ray.init: {time.perf_counter() - t0:.1f} s (not counted below)")
    try:
        sim()
        shared_gates()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()

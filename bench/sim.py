"""Benchmark (not a test): the sim provider's raw speed — 100,000 single-sample requests, one at a time.

Was a test with a wall-clock bound (`test_sim_provider.py`); the structural part stays there (a zero-
latency sim call never suspends). Figure before the move: about 0.35 s for 100,000 samples.
"""

from __future__ import annotations

import asyncio
import time

from ember_compiler.providers.base import Request
from ember_compiler.providers.sim import SimProvider

MSGS = [{"role": "user", "content": "Which option is right? A) 1 B) 2 C) 3 D) 4"}]


def main(count: int = 100_000) -> None:
    provider = SimProvider()
    binding = {"provider": "sim"}
    reqs = [Request("w", binding, MSGS, 1, {"role": "generate", "truth": "A", "seed": 1, "example_id": f"e{i}",
                                            "node_id": "n", "sample_offset": 0}) for i in range(count)]

    async def go() -> None:
        for r in reqs:
            await provider.complete(r)

    start = time.perf_counter()
    asyncio.run(go())
    wall = time.perf_counter() - start
    print(f"sim provider: {count:,} samples in {wall:.2f} s = {count / wall:,.0f} samples/s")


if __name__ == "__main__":
    main()

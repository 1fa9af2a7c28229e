"""Test doubles and helpers for Ember's tests and for tests of code built on Ember (test-only).

- `ember_compiler.testing.clock` — `virtual_time()`: event loops on a virtual clock, so latencies and
  timeouts take no real time and a run's virtual duration is exact; `run(coro)` runs one coroutine
  on such a loop; `loop_clock` is a `Runtime(clock=...)` that follows it.
- `ember_compiler.testing.probes` — `InFlight`: how many calls overlapped, when each started and ended.
- `ember_compiler.testing.providers` — a scripted HTTP `Server` (httpx2 MockTransport), recorded
  provider replies (`fixture`, `reply`), `FakeClock`, and `request` / `runtime` / `complete` / `one`.
- `ember_compiler.testing.fake_server` — a fake OpenAI-compatible server in a subprocess
  (`FakeServer`, `binding`), for tests and benchmarks that need real HTTP.
- `ember_compiler.testing.fixtures` — invalid spec fixtures that state their expected diagnostics
  (`# expect: LINE:COL CODE`): `invalid_cases(folder)` gives one `FixtureCase` per file.
- `ember_compiler.testing.analytic` — exact analytical results the sim must match: `majority_accuracy`,
  `plurality_accuracy`, the easy/hard `mixture` and `mixture_rows` drawn from it.
- `ember_compiler.testing.cases` — the compile cases (`tests/cases/compile/NAME.yaml`): `lower_case(name)`,
  `compile_case(name)`, relative to the working directory (the tests' `at_repo_root` fixture).

Timing is asserted on virtual time or on structure, never on the wall clock:

    with virtual_time() as clock:
        result, took = clock.measure(lambda: run_plan(plan, inputs, runs_dir=None))
    assert took == pytest.approx(0.2)  # eight 200 ms sim calls overlapped: one call's latency

How fast something is belongs in `bench/` (printed figures, no assertion).

Nothing in the library imports this package (`tests/unit/testing/test_testing_kit.py` checks it); import the
submodule you need.
"""

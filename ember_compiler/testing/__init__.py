"""Test doubles and helpers for Ember's tests and for tests of code built on Ember (test-only).

- `ember_compiler.testing.clock` — `virtual_time()`: event loops on a virtual clock, so latencies and
  timeouts take no real time and a run's virtual duration is exact (no wall-clock assertions).
- `ember_compiler.testing.probes` — `InFlight`: how many calls overlapped, in which order they started.
- `ember_compiler.testing.providers` — a scripted HTTP `Server` (httpx2 MockTransport), recorded
  provider replies, `FakeClock`, and `request` / `runtime` / `complete` / `one` shortcuts.
- `ember_compiler.testing.fake_server` — a fake OpenAI-compatible server in a subprocess
  (`FakeServer`), for tests and benchmarks that need real HTTP.

Nothing in the library imports this package (a test checks it); import the submodule you need.
"""

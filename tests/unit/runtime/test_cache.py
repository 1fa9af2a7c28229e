"""The response cache: per-sample keys, reruns that cost nothing, replay, many concurrent writers."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
from pathlib import Path

import httpx2
import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.errors import ConfigError
from ember_compiler.providers.base import Completion
from ember_compiler.runtime import cache as cache_module
from ember_compiler.runtime.budget import Budget, Spending
from ember_compiler.runtime.cache import CacheMiss, ResponseCache, default_path, sample_keys
from ember_compiler.testing.providers import KEY, Server, complete, request, runtime

ROOT = Path(__file__).resolve().parents[3]
SIM_SC = ROOT / "specs" / "sim" / "self-consistency.yaml"
BINDING = {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.8, "max_tokens": 32}


def entries(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM responses").fetchone()[0]


def chat(req: httpx2.Request) -> httpx2.Response:
    n = json.loads(req.content).get("n", 1)
    return httpx2.Response(200, json={
        "id": "chatcmpl-1", "model": "gpt-4o-mini", "object": "chat.completion",
        "choices": [{"index": i, "message": {"role": "assistant", "content": f"sample {i} Answer: {i}"},
                     "finish_reason": "stop"} for i in range(n)],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5 * n, "total_tokens": 12 + 5 * n}})


@pytest.fixture()
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def test_second_identical_run_makes_no_calls_and_prints_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "c.sqlite3"
    args = ["run", str(SIM_SC), "-i", "question=q", "--seed", "7", "--set", "params.n=9", "--cache", str(cache)]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    second = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    a, b = json.loads(first.output), json.loads(second.output)
    assert a["calls"] == 9 and b["calls"] == 0 and b["cache_hits"] == 9 and b["cost_usd"] == 0
    assert a["outputs"] == b["outputs"]
    assert entries(cache) == 9  # one entry per sample
    text = runner.invoke(app, args, catch_exceptions=False)
    assert "0 calls" in text.output and "9 cached" in text.output
    trace = tmp_path / ".ember" / "runs" / b["run_id"] / "trace.jsonl"
    spans = [json.loads(line) for line in trace.read_text().splitlines()]
    chats = [s for s in spans if s["name"].startswith("chat")]
    assert chats and all(s["attributes"].get("ember.cache.hit") is True for s in chats)
    other_seed = runner.invoke(app, [*args[:5], "8", *args[6:], "--json"], catch_exceptions=False)
    assert json.loads(other_seed.output)["calls"] == 9  # the run seed is part of the key


def test_ensemble_samples_are_distinct_entries_and_reruns_hit(tmp_path, key):
    path = tmp_path / "c.sqlite3"
    server = Server(chat)
    rt = runtime(server, cache=ResponseCache(path))
    [first] = complete(rt, request(BINDING, n=5))
    assert len(first.texts) == 5 and len(server.requests) == 1
    assert entries(path) == 5
    assert len(set(sample_keys("openai", request(BINDING, n=5)))) == 5
    rt = runtime(server, cache=ResponseCache(path))
    [again] = complete(rt, request(BINDING, n=5))
    assert again.texts == first.texts and len(server.requests) == 1 and rt.usage.cache_hits == 5
    assert rt.usage.calls == 0 and rt.usage.cost_usd == 0
    # one more sample: only the missing one is requested, from the next sample index
    rt = runtime(server, cache=ResponseCache(path))
    [more] = complete(rt, request(BINDING, n=6))
    assert more.texts[:5] == first.texts and len(more.texts) == 6
    assert server.bodies()[-1].get("n", 1) == 1 and rt.usage.calls == 1 and rt.usage.cache_hits == 5
    # anything that changes the output is a different key
    for changed in ({**BINDING, "temperature": 0.2}, {**BINDING, "model": "gpt-4o"}, {**BINDING, "seed": 1},
                    {**BINDING, "base_url": "http://127.0.0.1:9/v1"}):
        assert set(sample_keys("openai", request(changed, n=5))).isdisjoint(sample_keys("openai", request(BINDING, n=5)))
    assert sample_keys("openai", request({**BINDING, "timeout_s": 3}, n=2)) == sample_keys("openai", request(BINDING, n=2))


def test_replay_fails_on_a_miss_and_read_only_writes_nothing(tmp_path, key):
    path = tmp_path / "c.sqlite3"
    server = Server(chat)
    [err] = complete(runtime(server, cache=ResponseCache(path, mode="replay")), request(BINDING, n=2))
    assert isinstance(err, CacheMiss) and "replay: no cached response" in str(err) and not server.requests
    complete(runtime(server, cache=ResponseCache(path, mode="read-only")), request(BINDING, n=2))
    assert len(server.requests) == 1 and entries(path) == 0
    complete(runtime(server, cache=ResponseCache(path)), request(BINDING, n=2))
    [ok] = complete(runtime(server, cache=ResponseCache(path, mode="replay")), request(BINDING, n=2))
    assert len(ok.texts) == 2 and len(server.requests) == 2


def test_hits_reserve_no_budget(tmp_path, key):
    path = tmp_path / "c.sqlite3"
    server = Server(chat)
    complete(runtime(server, cache=ResponseCache(path)), request(BINDING, n=3))
    rt = runtime(server, cache=ResponseCache(path), budget=Spending(Budget(max_calls=0)))
    [hit] = complete(rt, request(BINDING, n=3))
    assert isinstance(hit, Completion) and rt.budget.spent_calls == 0


def test_default_location_respects_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "ember" / "responses.sqlite3"


def test_opening_a_new_cache_waits_out_a_writer_instead_of_failing(tmp_path, monkeypatch):
    # SQLite answers the switch to WAL with SQLITE_BUSY at once (no busy handler) while another
    # connection holds a RESERVED lock: 32 processes opening one new cache met it ("database is locked")
    path = tmp_path / "c.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the opener backs off: the other connection commits meanwhile
        waits.append(seconds)
        if len(waits) == 3:
            other.execute("COMMIT")

    monkeypatch.setattr(cache_module.time, "sleep", sleep)
    cache = ResponseCache(path)
    assert len(waits) == 3 and all(0 < w < 1 for w in waits)
    assert cache._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    asyncio.run(cache.aclose())
    other.close()


def test_a_cache_that_stays_locked_is_a_clear_error_after_the_busy_timeout(tmp_path, monkeypatch):
    path = tmp_path / "c.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    clock = [0.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(cache_module.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    with pytest.raises(ConfigError, match="cannot open the response cache .*database is locked"):
        ResponseCache(path)
    assert clock[0] >= cache_module.BUSY_TIMEOUT_MS / 1000
    other.close()


_START = None  # a barrier shared with the forked writers: all of them open the cache at once


def _writer(args: tuple[str, int]) -> int:
    path, worker = args
    if _START is not None:
        _START.wait(timeout=60)

    async def main() -> None:
        cache = ResponseCache(path)
        for j in range(200):
            req = request(BINDING, n=2, content=f"w{worker} q{j}")
            cache.put(sample_keys("openai", req), Completion(texts=[f"{worker}-{j}-a", f"{worker}-{j}-b"]))
            shared = request(BINDING, content=f"shared {j}")  # every process writes these too
            cache.put(sample_keys("openai", shared), Completion(texts=[f"shared {j}"]))
            if j % 50 == 0:
                await asyncio.sleep(0.01)  # let the writer task run mid-way
        await cache.aclose()

    asyncio.run(main())
    return worker


def test_32_processes_write_one_cache_without_errors_or_losses(tmp_path):
    path = str(tmp_path / "shared.sqlite3")
    global _START
    ctx = multiprocessing.get_context("fork")
    _START = ctx.Barrier(32)  # inherited by the forked workers
    try:
        with ctx.Pool(32) as pool:
            done = pool.map_async(_writer, [(path, w) for w in range(32)]).get(timeout=120)
    finally:
        _START = None
    assert sorted(done) == list(range(32))
    assert entries(Path(path)) == 32 * 200 * 2 + 200
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_eval_rerun_from_the_cache_and_flag_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "c.sqlite3"
    args = ["eval", str(SIM_SC), "--data", str(ROOT / "specs" / "data" / "sim-mcq.jsonl"), "--cache", str(cache),
            "--json", "--no-progress"]
    runner = CliRunner()
    first = json.loads(runner.invoke(app, args, catch_exceptions=False).output)
    second = json.loads(runner.invoke(app, args, catch_exceptions=False).output)
    assert first["calls"] > 0 and second["calls"] == 0 and second["cache_hits"] == first["calls"]
    assert second["metrics"] == first["metrics"]
    bad = runner.invoke(app, ["run", str(SIM_SC), "-i", "question=q", "--no-cache", "--cache", str(cache)])
    assert bad.exit_code == 2 and "--no-cache cannot be combined" in bad.output
    bad = runner.invoke(app, ["run", str(SIM_SC), "-i", "question=q", "--cache-mode", "nope"])
    assert bad.exit_code == 2

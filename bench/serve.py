"""`ember serve` benchmarks (not tests): `python bench/serve.py` (about 2 minutes; everything on loopback,
every process bounded in time, each stops by itself).

(a) per-request overhead: a separate load process drives requests at fixed rates (100, 500, 1,000 req/s)
    at a one-call spec — on the sim (0 ms) and on a fake OpenAI upstream (50 ms) — and, in the same
    period, straight at the same upstream with raw httpx2; the latency `ember serve` adds is the
    difference of the percentiles (for the sim, over a bare upstream answering at 0 ms). The highest
    rate with no error and ≥ 95 % of the rate achieved is "sustained".
(b) 2,000 concurrent streaming clients on a 200 ms upstream (first token at 50 ms): errors, p99 time
    to first token, the server's peak RSS.
(c) the same upstream answering 20 % 429s and 5 % 500s: every request must end in a 200 or an OpenAI
    error object, none may hang (the server's deadline is 30 s, the client's 60 s).

    python bench/serve.py                 # all of it
    python bench/serve.py --quick         # shorter runs (a smoke test of the script)

The upstream and the load generator are modes of this file (`--upstream`, `--load`), run as their own
processes so that the server's CPU is its own (the machine's 2 cores are still shared by all three).
The load generator's client for (a) is a bare HTTP/1.1 connection stack (`--client light`, the default)
or raw httpx2 (`--client httpx2`), the same one for the direct and the served runs (see `load`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "EMBER_BENCH_FAKE_KEY"
QUESTION = [{"role": "user", "content": "What is 7 * 6?"}]


# -- the fake upstream ----------------------------------------------------------------------------------
def upstream_app(latency_ms: float, p429: float, p500: float, seed: int):
    """An OpenAI-compatible upstream (starlette): JSON or SSE replies after `latency_ms`, with faults."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    rand = random.Random(seed)
    delay = latency_ms / 1000
    text = "Working through it.\nAnswer: A"
    usage = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}

    async def chat(request):
        body = await request.json()
        draw = rand.random()
        if draw < p429:
            return JSONResponse({"error": {"message": "rate limited", "type": "rate_limit_error"}}, 429,
                                headers={"retry-after-ms": "50"})
        if draw < p429 + p500:
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, 500)
        if not body.get("stream"):
            await asyncio.sleep(delay)
            return JSONResponse({"id": "x", "object": "chat.completion", "model": "fake", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})

        async def events():
            pieces = ["Working ", "through it.\n", "Answer: ", "A"]
            for i, piece in enumerate(pieces):  # first token at a quarter of the latency, the last at its end
                await asyncio.sleep(delay / len(pieces))
                data = {"choices": [{"index": 0, "delta": {"content": piece},
                                     "finish_reason": "stop" if i == len(pieces) - 1 else None}]}
                yield f"data: {json.dumps(data)}\n\n"
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def run_upstream(args) -> None:
    import uvicorn

    uvicorn.run(upstream_app(args.latency_ms, args.p429, args.p500, 0), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False, http="httptools", backlog=4096,
                timeout_graceful_shutdown=1)


# -- the load generator ---------------------------------------------------------------------------------
async def load(url: str, model: str, rate: float, duration: float, stream: bool, clients: int,
               client: str = "light") -> dict:
    """Open-loop load at `rate` req/s for `duration` s (or `clients` streams all at once with rate 0).

    `client`: "httpx2" sends each request with a raw httpx2.AsyncClient; "light" (the default, for the
    non-streaming runs) sends the same bytes through a bare HTTP/1.1 connection stack (Ember's provider
    transport, no request or response objects). On a 2-core machine the load process shares the CPU
    with the server it measures: httpx2 costs it 0.8-2.7 ms of CPU per request (more than the server's
    own cost), the light client a third to a quarter of that, so the server's queueing is less the driver's."""
    import ssl

    import httpx2

    from ember_compiler.providers.http_transport import Transport, origin, request_head

    # at a fixed rate, a pool of 64 keep-alive connections (an unbounded pool makes httpx2 open ever more
    # connections once a run falls behind, and its pool search then costs the load process ~4 ms of CPU
    # per request at 1,000 req/s instead of ~0.8 ms); the streaming clients each need their own
    pool = max(clients, 4096) if rate <= 0 else 64
    limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
    latencies, ttfts, statuses, shapes_ok = [], [], {}, True
    light = Transport(ssl.create_default_context()) if client == "light" and not stream else None
    target = httpx2.URL(url).join("/v1/chat/completions")
    key, gate = origin(target), asyncio.Semaphore(pool)
    head = request_head("POST", target, [(b"Host", target.netloc), (b"Content-Type", b"application/json")])

    async def post_light(body: dict) -> tuple[int, bytes]:
        data = json.dumps(body, separators=(",", ":")).encode()
        async with gate:  # at most `pool` connections, as the httpx2 client's pool
            status, _, content = await light.exchange(key, head + b"Content-Length: %d\r\n\r\n" % len(data) + data,
                                                      60.0, 1 << 24)
        return status, content

    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=60, trust_env=False) as http:
        async def one(i: int) -> None:
            nonlocal shapes_ok
            body = {"model": model, "messages": QUESTION, "seed": i}
            start = time.perf_counter()
            try:
                if light is not None:
                    status, content = await post_light(body)
                    data = json.loads(content)
                    shapes_ok &= ("choices" in data) if status == 200 else ("error" in data)
                elif not stream:
                    r = await http.post("/v1/chat/completions", json=body)
                    status = r.status_code
                    data = r.json()
                    shapes_ok &= ("choices" in data) if status == 200 else ("error" in data)
                else:
                    body["stream"] = True
                    async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                        status = r.status_code
                        first = None
                        async for line in r.aiter_lines():
                            if first is None and line.startswith("data: ") and '"content":"' in line \
                                    and '"content":""' not in line:
                                first = time.perf_counter() - start
                            if line.startswith('data: {"error"'):
                                status = 599  # an error event after the stream started
                        if first is not None:
                            ttfts.append(first)
            except Exception as exc:  # a transport error or a hang past the client's timeout
                status = type(exc).__name__
            latencies.append(time.perf_counter() - start)
            statuses[str(status)] = statuses.get(str(status), 0) + 1

        tasks = []
        t0, cpu0 = time.perf_counter(), time.process_time()
        if rate <= 0:
            tasks = [asyncio.ensure_future(one(i)) for i in range(clients)]
        else:
            total = int(rate * duration)
            for i in range(total):
                wait = t0 + i / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.gather(*tasks)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if light is not None:
        await light.aclose()
    latencies.sort()
    ttfts.sort()
    n = len(latencies)
    return {"sent": n, "achieved_rps": round(n / wall, 1), "statuses": statuses, "shapes_ok": shapes_ok,
            "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99),
            "ttft_p50_ms": pct(ttfts, 50), "ttft_p99_ms": pct(ttfts, 99),
            "load_cpu_us_per_request": round(cpu / max(1, n) * 1e6)}  # the load generator's own CPU


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(len(values) * q / 100))] * 1000, 2)


def run_load(args) -> None:
    print(json.dumps(asyncio.run(load(args.url, args.model, args.rate, args.duration, args.stream, args.clients,
                                      args.client))))


# -- orchestration ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"a bench process exited at start ({proc.args})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("a bench process did not start")


class Proc:
    """A child process, killed when the bench ends (or after `lifetime_s`, by `timeout`)."""

    def __init__(self, argv: list[str], port: int, lifetime_s: int = 600) -> None:
        self.port = port
        self.proc = subprocess.Popen(["timeout", str(lifetime_s), *argv], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env={**os.environ, KEY_ENV: "sk-bench"})
        wait_up(port, self.proc)

    def child(self) -> list[str]:
        return subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process under `timeout` (less noisy than wall time on a busy box)."""
        for pid in self.child():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return float("nan")

    def peak_rss_mb(self) -> float:
        """VmHWM of the process under `timeout`."""
        for pid in self.child():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        return float("nan")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def upstream(latency_ms: float, p429: float = 0, p500: float = 0) -> Proc:
    port = free_port()
    return Proc([sys.executable, __file__, "--upstream", "--port", str(port), "--latency-ms", str(latency_ms),
                 "--p429", str(p429), "--p500", str(p500)], port)


def ember_serve(spec: Path, tmp: Path, *extra: str) -> Proc:
    port = free_port()
    ember = Path(sys.executable).parent / "ember"
    return Proc([str(ember), "serve", str(spec), "--port", str(port), "--trace", str(tmp / "trace.jsonl"),
                 "--no-cache", *extra], port)


def drive(port: int, model: str, rate: float, duration: float, stream: bool = False, clients: int = 0,
          client: str = "light") -> dict:
    out = subprocess.run(["timeout", "300", sys.executable, __file__, "--load", "--url", f"http://127.0.0.1:{port}",
                          "--model", model, "--rate", str(rate), "--duration", str(duration), "--clients",
                          str(clients), "--client", client, *(["--stream"] if stream else [])],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the load process failed: {out.stderr[-500:]}")
    return json.loads(out.stdout)


def spec(tmp: Path, name: str, binding: str) -> Path:
    from ember_compiler.testing.serving import one_call_spec

    return one_call_spec(tmp, binding, name)


def fake_binding(port: int, extra: str = "") -> str:
    return (f"{{provider: openai, base_url: 'http://127.0.0.1:{port}/v1', api_key_env: {KEY_ENV}, model: fake, "
            f"max_tokens: 64, limits: {{concurrency: 4096}}{extra}}}")


def ok(result: dict) -> bool:
    return set(result["statuses"]) == {"200"}


def overhead(tmp: Path, rates: list[int], duration: float, client: str = "light") -> list[dict]:
    rows = []
    bare = upstream(0)
    fifty = upstream(50)
    served_sim = ember_serve(spec(tmp, "sim-one", "{provider: sim}"), tmp, "--max-concurrency", "2048",
                             "--queue", "4096")
    served_fake = ember_serve(spec(tmp, "fake-one", fake_binding(fifty.port)), tmp, "--max-concurrency", "2048",
                              "--queue", "4096")
    try:
        # warm every process first (imports, template compilation, connection pools): the first second of
        # a cold server is not the per-request cost, and it would land in whichever rate came first
        for port, model in ((served_sim.port, "sim-one"), (served_fake.port, "fake-one"), (bare.port, "fake"),
                            (fifty.port, "fake")):
            drive(port, model, 200, 1.5, client=client)
        for rate in rates:
            for label, served, direct, model in (("sim 0 ms", served_sim, bare, "sim-one"),
                                                 ("fake 50 ms", served_fake, fifty, "fake-one")):
                cpu = direct.cpu_s()
                base = drive(direct.port, "fake", rate, duration, client=client)  # alternately, in the same period
                direct_cpu_us = (direct.cpu_s() - cpu) / max(1, base["sent"]) * 1e6
                cpu = served.cpu_s()
                got = drive(served.port, model, rate, duration, client=client)
                cpu_us = (served.cpu_s() - cpu) / max(1, got["sent"]) * 1e6
                rows.append({"upstream": label, "rate": rate, "direct": base, "served": got,
                             "server_cpu_us_per_request": round(cpu_us),
                             "upstream_cpu_us_per_request": round(direct_cpu_us),
                             "added_p50_ms": _diff(got["p50_ms"], base["p50_ms"]),
                             "added_p99_ms": _diff(got["p99_ms"], base["p99_ms"]),
                             "sustained": ok(got) and got["achieved_rps"] >= 0.95 * rate})
    finally:
        for p in (served_sim, served_fake, bare, fifty):
            p.close()
    return rows


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def streaming(tmp: Path, clients: int, p429: float = 0, p500: float = 0) -> dict:
    up = upstream(200, p429, p500)
    served = ember_serve(spec(tmp, "stream-one", fake_binding(up.port, ", max_retries: 2")), tmp,
                         "--max-concurrency", str(clients + 48), "--queue", str(clients), "--timeout", "30")
    try:
        result = drive(served.port, "stream-one", 0, 0, stream=True, clients=clients)
        result["server_peak_rss_mb"] = served.peak_rss_mb()
    finally:
        served.close()
        up.close()
    return result


async def _asgi_calls(app, body: bytes, n: int) -> float:
    """Seconds per request of `n` POSTs to /v1/chat/completions, the ASGI app called directly."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}

    async def one() -> None:
        done = asyncio.Event()
        first = [True]

        async def receive():
            if first[0]:
                first[0] = False
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"status {message['status']}")
        await app({**scope, "state": {}}, receive, send)
        done.set()

    start = time.perf_counter()
    for _ in range(n):
        await one()
    return (time.perf_counter() - start) / n


def in_process(tmp: Path, n: int, rounds: int) -> dict:
    """What a served request costs the server's CPU, without the network: `ember serve`'s app against a
    bare Starlette route answering a canned completion, and against `ember run`'s path (a run with its
    folder, result file and trace) for the same one-call sim spec — alternately, best round of each."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ember_compiler import api
    from ember_compiler.runs import run_plan_async

    path = spec(tmp, "inproc", "{provider: sim}")
    # no response cache, as `ember serve --no-cache` in (a): every request is a run
    served = api.serve_app([path], api.ServeOptions(trace=tmp / "inproc-trace.jsonl",
                                                    run=api.RunOptions(runs_dir=None, cache_mode="off")))
    canned = {"id": "x", "object": "chat.completion", "model": "inproc", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "stop"}]}

    async def bare_chat(request):
        await request.json()
        return JSONResponse(canned)
    bare = Starlette(routes=[Route("/v1/chat/completions", bare_chat, methods=["POST"])])
    body = json.dumps({"model": "inproc", "messages": QUESTION, "seed": 1}).encode()
    plan = api.compile(path)
    options = api.RunOptions(runs_dir=tmp / "runs", cache_mode="off")

    async def runs(k: int) -> float:
        start = time.perf_counter()
        for i in range(k):
            await run_plan_async(plan, {"question": "What is 7 * 6?"}, options.replace(seed=i))
        return (time.perf_counter() - start) / k

    async def measure() -> dict:
        best = {"serve": float("inf"), "bare": float("inf"), "run": float("inf")}
        await _asgi_calls(served, body, 100)  # warm up
        for _ in range(rounds):
            best["serve"] = min(best["serve"], await _asgi_calls(served, body, n))
            best["bare"] = min(best["bare"], await _asgi_calls(bare, body, n))
            best["run"] = min(best["run"], await runs(max(1, n // 4)))
        return best
    logging.getLogger("ember.serve.access").disabled = True  # the access log goes to a terminal otherwise
    best = asyncio.run(measure())
    return {k: round(v * 1e6) for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", action="store_true")
    parser.add_argument("--load", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--p429", type=float, default=0)
    parser.add_argument("--p500", type=float, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--model", default="")
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--duration", type=float, default=0)
    parser.add_argument("--clients", type=int, default=0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--client", choices=["light", "httpx2"], default="light",
                        help="the load generator's HTTP client for the non-streaming runs (see `load`)")
    args = parser.parse_args()
    if args.upstream:
        return run_upstream(args)
    if args.load:
        return run_load(args)
    rates, duration, clients = ([100, 500], 1.0, 200) if args.quick else ([100, 500, 1000], 3.0, 2000)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores, shared)")
        cost = in_process(tmp, 500 if args.quick else 2000, 2 if args.quick else 5)
        print(f"(d) in-process, one-call sim spec, best of alternating rounds: ember serve app {cost['serve']} µs "
              f"per request, bare Starlette route {cost['bare']} µs, added {cost['serve'] - cost['bare']} µs; "
              f"ember run's path (run folder, result file, trace) {cost['run']} µs per run")
        rows = overhead(tmp, rates, duration, args.client)
        print(f"(a) per-request overhead (latency added by ember serve over calling the same upstream directly; "
              f"load client: {args.client})")
        print(f"{'upstream':<11} {'rate':>5} {'direct p50/p99 ms':>18} {'served p50/p99 ms':>18} "
              f"{'added p50/p99 ms':>17} {'achieved':>9} {'errors':>6} {'server CPU/req':>14} "
              f"{'upstream CPU/req':>16} {'load CPU/req':>12}")
        for r in rows:
            s, d = r["served"], r["direct"]
            errors = sum(v for k, v in s["statuses"].items() if k != "200")
            print(f"{r['upstream']:<11} {r['rate']:>5} {d['p50_ms']:>8}/{d['p99_ms']:<9} {s['p50_ms']:>8}/"
                  f"{s['p99_ms']:<9} {r['added_p50_ms']:>8}/{r['added_p99_ms']:<8} {s['achieved_rps']:>9} {errors:>6} "
                  f"{r['server_cpu_us_per_request']:>11} µs {r['upstream_cpu_us_per_request']:>13} µs "
                  f"{s['load_cpu_us_per_request']:>9} µs")
        for label in ("sim 0 ms", "fake 50 ms"):
            best = max((r["rate"] for r in rows if r["upstream"] == label and r["sustained"]), default=0)
            print(f"highest rate sustained without errors, {label}: {best} req/s")
        faults_ok = True
        for title, p429, p500 in (("(b) streaming", 0, 0), ("(c) fault mix 20% 429 / 5% 500", 0.2, 0.05)):
            res = streaming(tmp, clients, p429, p500)
            answered = sum(v for k, v in res["statuses"].items() if k.isdigit())
            print(f"{title}: {clients} concurrent streaming clients on a 200 ms upstream: statuses "
                  f"{res['statuses']}, answered {answered}/{res['sent']}, TTFT p50/p99 {res['ttft_p50_ms']}/"
                  f"{res['ttft_p99_ms']} ms, end p99 {res['p99_ms']} ms, server peak RSS {res['server_peak_rss_mb']} MB")
            if p429:
                faults_ok = answered == res["sent"]
        print(f"fault mix: every request answered (200 or an OpenAI error): {faults_ok}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

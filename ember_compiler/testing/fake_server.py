"""A fake OpenAI-compatible server for tests and the provider benchmarks (`bench/providers.py`).

`FakeServer()` starts it in a subprocess on a free port (`python -m ember_compiler.testing.fake_server`)
and `binding(server.url, limits)` is a spec model binding pointing at it (key in `$KEY_ENV`).

It listens on 127.0.0.1 only, in its own process, on the stdlib (an `asyncio` protocol speaking a minimal
HTTP/1.1 with keep-alive), and exits by itself after `--max-lifetime-s` or when its parent closes its
stdin. Endpoints:

- `POST …/chat/completions` — waits the configured latency (a timer, no CPU), then answers like
  OpenAI: `n` choices whose `message.content` is a short reasoning ending "Answer: A" (or, when the
  request carries `response_format: json_schema`, a JSON object filling that schema), and `usage`
  (prompt tokens ≈ characters / 4, 12 completion tokens per choice). A prompt containing `[refuse K]`
  gets its first K choices as refusals (`content: null, refusal: "..."`, as OpenAI sends them), and
  `[empty K]` its first K as empty replies cut off by length (`content: ""`, `finish_reason: length`,
  a reasoning model that spent `max_tokens` thinking): a dataset says exactly which samples are no answer.
  Two hostile modes (issue 17), each bounded to the first 4 KB of the header: `[echo auth]` answers 500
  with a text body that echoes the request's `Authorization` header after 166 characters of filler (a
  200-character snippet cuts a key that is not scrubbed first), and `[model key]` answers with the
  bearer token as the response's `model`.
  Hostile usage, for the budget tests: `[prompt_tokens V]` / `[completion_tokens V]` report V (a JSON
  value: `5000`, `-99999000`, `"lots"`) instead of the real count, `[no usage]` leaves `usage` out, and
  `[extra K]` returns K choices more than `n`.
- `GET /stats` — counters since the last reset: `requests` (chat requests received), `ok`, `rejected`
  (429s), `in_flight`, `max_in_flight` (chat requests between the end of their headers and the write of
  their response), `max_answers_in_prompt` (the most of this server's replies one request's messages quoted: a
  judge that saw all 16 candidates shows 16).
- `POST /reset` — zero the counters and the rate-limit window; an optional JSON body sets
  `latency_ms`, `rpm` (null: no limit), `window_s` and `exact_hint`.

The rate limit is a sliding window: at most `rpm × window_s / 60` requests are accepted in any
`window_s` seconds (default 1 s, so 6,000 rpm is 100 in any second — the way OpenAI says it enforces
per-minute limits over shorter periods). A request over the limit is answered at once with 429 and
`Retry-After` (whole seconds, rounded up, as HTTP says; with `exact_hint` also `retry-after-ms`: when
the oldest accepted request leaves the window, i.e. room for one more), and does not count against
the window.

    python -m ember_compiler.testing.fake_server --port 0 --latency-ms 100 --rpm 6000   # prints "listening 127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import time

HOST = "127.0.0.1"
MARK = "the first one fits best"  # counted in prompts: how many candidate replies a request carries
REPLY = f"The question asks for one option; working through it, {MARK}.\nAnswer: A"
REFUSAL = "I'm sorry, but I can't help with that."
_MARKER = re.compile(r"\[(refuse|empty|extra) (\d+)\]")
_USAGE = re.compile(r"\[(prompt_tokens|completion_tokens) ([^\]]+)\]")
ECHO_FILLER = "upstream failed; request was: " + "." * 136  # 166 characters, then the echoed header


class State:
    def __init__(self, latency_ms: float, rpm: float | None, window_s: float) -> None:
        self.configure(latency_ms, rpm, window_s)

    def configure(self, latency_ms: float, rpm: float | None, window_s: float, exact_hint: bool = False) -> None:
        self.exact_hint = exact_hint
        self.latency_s = max(0.0, float(latency_ms)) / 1000
        self.rpm = float(rpm) if rpm else None
        self.window_s = float(window_s)
        self.limit = max(1, int(self.rpm * self.window_s / 60)) if self.rpm else None
        self.accepted: collections.deque[float] = collections.deque()  # times of accepted requests in the window
        self.requests = self.ok = self.rejected = self.in_flight = self.max_in_flight = 0
        self.max_answers = 0
        self.ids = 0
        self.cpu0 = time.process_time()

    def stats(self) -> dict:
        return {"cpu_s": time.process_time() - self.cpu0, "requests": self.requests, "ok": self.ok, "rejected": self.rejected, "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight, "max_answers_in_prompt": self.max_answers,
                "latency_ms": self.latency_s * 1000, "rpm": self.rpm, "window_s": self.window_s,
                "exact_hint": self.exact_hint}

    def admit(self, now: float) -> float | None:
        """None when the request may go; else seconds until the window has room."""
        if self.limit is None:
            return None
        window = self.accepted
        while window and window[0] <= now - self.window_s:
            window.popleft()
        if len(window) >= self.limit:
            return window[0] + self.window_s - now
        window.append(now)
        return None


def _fill(schema: dict) -> dict:
    """A reply object for a JSON schema (the judge's, select's, verify's)."""
    out = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if "enum" in prop:
            out[name] = prop["enum"][0]
        elif kind == "integer":
            out[name] = 1
        elif kind == "number":
            out[name] = 1.0
        elif kind == "boolean":
            out[name] = True
        else:
            out[name] = "A" if name == "answer" else f"The candidates agree: {MARK}."
    return out


def prompt_of(body: dict) -> str:
    return "\n".join(str(m.get("content") or "") for m in body.get("messages") or [] if isinstance(m, dict))


def completion(state: State, body: dict, auth: str = "") -> dict:
    n = int(body.get("n") or 1)
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        content = json.dumps(_fill((fmt.get("json_schema") or {}).get("schema") or {}))
    else:
        content = REPLY
    prompt = prompt_of(body)
    chars = len(prompt)
    marks = {kind: int(k) for kind, k in _MARKER.findall(prompt)}
    state.ids += 1
    choices = []
    for i in range(n + marks.get("extra", 0)):
        message, finish = {"role": "assistant", "content": content, "refusal": None}, "stop"
        if i < marks.get("refuse", 0):
            message = {"role": "assistant", "content": None, "refusal": REFUSAL}
        elif i < marks.get("refuse", 0) + marks.get("empty", 0):
            message, finish = {"role": "assistant", "content": "", "refusal": None}, "length"
        choices.append({"index": i, "message": message, "logprobs": None, "finish_reason": finish})
    out = {
        "id": f"chatcmpl-fake-{state.ids}", "object": "chat.completion", "created": int(time.time()),
        "model": (auth.removeprefix("Bearer ")[:4096] if "[model key]" in prompt else body.get("model") or "fake"),
        "system_fingerprint": "fp_fake",
        "choices": choices,
        "usage": {"prompt_tokens": chars // 4 + 8, "completion_tokens": 12 * n, "total_tokens": chars // 4 + 8 + 12 * n,
                  "prompt_tokens_details": {"cached_tokens": 0}},
    }
    for key, value in _USAGE.findall(prompt):  # hostile usage: whatever the prompt says
        out["usage"][key] = json.loads(value)
    if "[no usage]" in prompt:
        del out["usage"]
    return out


def response(status: int, payload: dict | str, extra: dict[str, str] | None = None, *, close: bool = False) -> bytes:
    text = isinstance(payload, str)  # a text body (a proxy's error page), else JSON
    body = payload.encode() if text else json.dumps(payload, separators=(",", ":")).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
    head = [f"HTTP/1.1 {status} {reason}", f"content-type: {'text/plain' if text else 'application/json'}",
            f"content-length: {len(body)}",
            "connection: close" if close else "connection: keep-alive"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Connection(asyncio.Protocol):
    """One client connection: requests one at a time (HTTP/1.1 keep-alive, no pipelining needed).

    A protocol, not streams: parsing and answering cost little (the double should add as little
    latency of its own as it can), and a request in its latency is a timer, not a task."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buf = bytearray()
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.next_request()

    def next_request(self) -> None:
        buf = self.buf
        if self.busy:
            return
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length") or 0)
        if len(buf) < end + 4 + length:
            return  # the rest of the body is on its way
        raw = bytes(buf[end + 4:end + 4 + length])
        del buf[:end + 4 + length]
        self.busy = True
        close = headers.get("connection", "").lower() == "close"
        state = self.state
        if method == "POST" and path.endswith("/chat/completions"):
            self.chat(raw, close, headers.get("authorization", ""))
        elif method == "GET" and path == "/stats":
            self.send(response(200, state.stats(), close=close), close)
        elif method == "POST" and path == "/reset":
            cfg = json.loads(raw) if raw else {}
            state.configure(cfg.get("latency_ms", state.latency_s * 1000), cfg.get("rpm", state.rpm),
                            cfg.get("window_s", state.window_s), bool(cfg.get("exact_hint")))
            self.send(response(200, state.stats(), close=close), close)
        else:
            self.send(response(404, {"error": {"message": f"no route {method} {path}"}}, close=close), close)

    def send(self, data: bytes, close: bool) -> None:
        self.busy = False
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)
        if close:
            t.close()
        elif self.buf:
            self.next_request()

    def chat(self, raw: bytes, close: bool, auth: str = "") -> None:
        state = self.state
        state.requests += 1
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            body = json.loads(raw)
        except ValueError:
            return self.done(response(400, {"error": {"message": "invalid JSON body",
                                                      "type": "invalid_request_error"}}, close=close), close)
        answers = sum((m.get("content") or "").count(MARK) for m in body.get("messages") or []
                      if isinstance(m, dict))
        state.max_answers = max(state.max_answers, answers)
        wait = state.admit(time.monotonic())
        if wait is not None:
            state.rejected += 1
            hint = {"retry-after": str(max(1, math.ceil(wait)))}
            if state.exact_hint:
                hint["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
            return self.done(response(429, {"error": {"message": f"Rate limit reached: {state.limit} requests per "
                                                                 f"{state.window_s:g}s", "type": "requests",
                                                      "code": "rate_limit_exceeded"}},
                                      hint, close=close), close)
        if "[echo auth]" in prompt_of(body):
            return self.done(response(500, f"{ECHO_FILLER}Authorization: {auth[:4096]}", close=close), close)
        reply = response(200, completion(state, body, auth), close=close)  # built now: the wait is the latency alone
        if state.latency_s:
            asyncio.get_running_loop().call_later(state.latency_s, self.done, reply, close, True)
        else:
            self.done(reply, close, True)

    def done(self, data: bytes, close: bool, ok: bool = False) -> None:
        state = self.state
        state.in_flight -= 1
        state.ok += ok
        self.send(data, close)


async def main(args: argparse.Namespace) -> None:
    state = State(args.latency_ms, args.rpm, args.window_s)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(state), HOST, args.port, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {HOST}:{port}", flush=True)
    stop = loop.create_future()
    if not sys.stdin.isatty():  # the parent holds our stdin: EOF means it is gone
        try:
            stdin = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

            async def watch() -> None:
                while await stdin.read(4096):
                    pass
                if not stop.done():
                    stop.set_result("stdin closed")

            loop.create_task(watch())
        except (OSError, ValueError):
            pass
    loop.call_later(args.max_lifetime_s, lambda: stop.done() or stop.set_result("max lifetime"))
    async with server:
        await stop
    server.close()
    os._exit(0)  # do not wait for open keep-alive connections


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rpm", type=float, default=None)
    parser.add_argument("--window-s", type=float, default=1.0)
    parser.add_argument("--max-lifetime-s", type=float, default=300.0)
    asyncio.run(main(parser.parse_args(argv)))


KEY_ENV = "EMBER_BENCH_FAKE_KEY"  # the variable the bindings name for their (fake) key


class FakeServer:
    """The fake server in a subprocess: started on a free port, killed on `close()`."""

    def __init__(self, lifetime_s: float = 240) -> None:
        import httpx2  # the server process itself does not need it

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ember_compiler.testing.fake_server", "--port", "0",
             "--max-lifetime-s", str(lifetime_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "listening 127.0.0.1:PORT"
        if not line.startswith("listening "):
            self.close()
            raise RuntimeError(f"the fake server did not start: {line!r}")
        self.url = "http://" + line.split()[1]
        self.control = httpx2.Client(base_url=self.url, timeout=10, trust_env=False)

    def reset(self, latency_ms: float = 0, rpm: float | None = None, window_s: float = 1.0,
              exact_hint: bool = False) -> None:
        self.control.post("/reset", json={"latency_ms": latency_ms, "rpm": rpm, "window_s": window_s,
                                          "exact_hint": exact_hint}).raise_for_status()

    def stats(self) -> dict:
        return self.control.get("/stats").json()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.control.close()
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
            self.proc.wait(timeout=2)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def binding(url: str, limits: dict | None = None, extra: str = "") -> str:
    """A spec model binding (YAML flow text) for the fake server at `url`."""
    lim = f", limits: {json.dumps(limits)}" if limits else ""
    return (f"{{provider: openai, base_url: '{url}/v1', api_key_env: {KEY_ENV}, model: fake, "
            f"max_tokens: 64{lim}{extra}}}")


if __name__ == "__main__":
    cli()

"""Streaming benchmark (not a test): what `on_text` costs a request, beside the same request unstreamed,
both measured in this process, alternately.

- sim at 0 ms: one request through the runtime, unstreamed, then streamed (the reply in 4 pieces);
- the OpenAI wire over `httpx2.MockTransport` (no sockets: the client, the SSE reader and the chunk
  assembly only): a 100-token reply as one JSON body, then as 100 `chat.completion.chunk` events plus
  the usage chunk and `[DONE]` — with no key to scrub (as `local`) and with one (every delta scrubbed).

Prints µs per request (best of 5 rounds) and the streamed/unstreamed ratio.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import replace

import httpx2

from ember_compiler.providers.base import Request
from ember_compiler.runtime.runtime import Runtime

TOKENS = 100
WORDS = [f" w{i}" for i in range(TOKENS)]
TEXT = "".join(WORDS)
USAGE = {"prompt_tokens": 20, "completion_tokens": TOKENS, "total_tokens": 20 + TOKENS}


def json_reply(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, json={"id": "c", "model": "fake", "usage": USAGE, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}]})


SSE = "".join(
    "data: " + json.dumps({"id": "c", "model": "fake", "usage": None, "choices": [
        {"index": 0, "delta": {"content": w}, "finish_reason": None}]}) + "\n\n" for w in WORDS) + \
    "data: " + json.dumps({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n" + \
    "data: " + json.dumps({"id": "c", "choices": [], "usage": USAGE}) + "\n\ndata: [DONE]\n\n"


def sse_reply(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=SSE.encode())


async def per_request(binding: dict, handler, stream: bool, n: int) -> float:
    rt = Runtime(transport=httpx2.MockTransport(handler) if handler else None)
    deltas: list[str] = []
    base = Request("m", binding, [{"role": "user", "content": "q"}], 1, {"role": "generate", "node_id": "n"})
    requests = [replace(base, meta={**base.meta, "example_id": str(i)}, on_text=deltas.append if stream else None)
                for i in range(n + 1)]
    await rt.complete(requests[0], 0, None)  # warm: the provider and its client exist
    t0 = time.perf_counter()
    for r in requests[1:]:
        await rt.complete(r, 0, None)
    elapsed = time.perf_counter() - t0
    await rt.aclose()
    if stream and handler is not None:
        assert "".join(deltas[-TOKENS:]) == TEXT
    return elapsed / n * 1e6


def compare(label: str, binding: dict, plain_handler, stream_handler, n: int) -> None:
    plain, streamed = [], []
    for _ in range(5):  # alternately, so both see the same load on this shared machine
        plain.append(asyncio.run(per_request(binding, plain_handler, False, n)))
        streamed.append(asyncio.run(per_request(binding, stream_handler, True, n)))
    p, s = min(plain), min(streamed)
    print(f"    {label:<40} unstreamed {p:8.1f} µs   streamed {s:8.1f} µs   ratio {s / p:5.2f}")


def main() -> None:
    print("streaming cost per request (best of 5, alternating)")
    compare("sim, 0 ms, 4 pieces", {"provider": "sim"}, None, None, 20_000)
    url = "http://fake.invalid/v1"
    compare(f"openai wire, {TOKENS} chunks, no key", {"provider": "openai", "base_url": url, "model": "fake"},
            json_reply, sse_reply, 500)
    os.environ["BENCH_STREAM_KEY"] = "sk-bench-0123456789abcdef0123"
    compare(f"openai wire, {TOKENS} chunks, key scrubbed",
            {"provider": "openai", "base_url": url, "model": "fake", "api_key_env": "BENCH_STREAM_KEY"},
            json_reply, sse_reply, 500)


if __name__ == "__main__":
    main()

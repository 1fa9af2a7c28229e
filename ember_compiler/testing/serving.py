"""A real uvicorn server in a thread on a free loopback port, for the `ember serve` tests and the bench.

    with ServerThread(app) as url:      # url = "http://127.0.0.1:PORT"
        openai.OpenAI(base_url=url + "/v1", api_key="k").chat.completions.create(...)

Leaving the block asks uvicorn to shut down as SIGTERM does (stop accepting, drain) and waits for it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path
from typing import Any

ONE_CALL = """ember: 1
name: {name}
inputs: {{question: string}}
models:
  m: {binding}
nodes:
  g: {{op: generate, model: m, prompt: "{{{{ inputs.question }}}}"}}
outputs:
  answer: ${{g.answer}}
"""


def one_call_spec(folder: Path, binding: str, name: str) -> Path:
    """A spec of one `generate` call on `binding` (YAML flow text), written as `folder/<name>.yaml`."""
    path = folder / f"{name}.yaml"
    path.write_text(ONE_CALL.format(name=name, binding=binding))
    return path


class ServerThread:
    """An app on uvicorn in a thread, configured as `ember serve` runs it (`serve.server.uvicorn_config`)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from ..serve.server import uvicorn_config

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(app))  # no signal handlers outside the main thread
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported by __enter__/__exit__
            self.error = exc

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"the server did not start: {self.error!r}")
            self.thread.join(0.01)
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


class HeldUpstream:
    """An OpenAI-compatible upstream that holds its answers until the test says so — structural
    control over "a request is in flight" with no timing.

    Every chat request is counted in `arrived` (a semaphore: `arrived.acquire(timeout=...)` waits for
    one); the reply waits for `release()`. A streamed request (`stream: true`) gets its first delta
    (`FIRST`) at once and the rest (`REST`) after `release()`. A request whose client left while held
    is counted in `abandoned` (the `left` semaphore is released for each).

        with HeldUpstream() as upstream:       # upstream.binding: a spec model binding (YAML flow text)
            ...
    """

    FIRST, REST = "Reasoning first.\n", "Answer: A"

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.gate = threading.Event()
        self.arrived = threading.Semaphore(0)
        self.left = threading.Semaphore(0)
        self.abandoned = 0
        self.requests = 0
        self._thread = ServerThread(Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])]))
        self.binding = ""

    def release(self) -> None:
        self.gate.set()

    async def _held(self, request: Any) -> bool:
        """Wait for `release()`; False when the client left first."""
        wait = asyncio.ensure_future(asyncio.to_thread(self.gate.wait))
        gone = asyncio.ensure_future(_until_disconnect(request.receive))
        await asyncio.wait((wait, gone), return_when=asyncio.FIRST_COMPLETED)
        if gone.done():
            self.abandoned += 1
            self.left.release()
            return False
        gone.cancel()
        return True

    async def _chat(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response, StreamingResponse

        body = await request.json()
        self.requests += 1
        self.arrived.release()
        usage = {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16,
                 "prompt_tokens_details": {"cached_tokens": 4}}
        if body.get("stream"):
            async def events():
                yield _sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": self.FIRST}}]})
                await asyncio.to_thread(self.gate.wait)
                yield _sse({"choices": [{"index": 0, "delta": {"content": self.REST}, "finish_reason": "stop"}]})
                yield _sse({"choices": [], "usage": usage})
                yield b"data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        if not await self._held(request):
            return Response(status_code=499)
        return JSONResponse({"id": "held", "object": "chat.completion", "model": "fake", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": self.FIRST + self.REST},
             "finish_reason": "stop"}], "usage": usage})

    def __enter__(self) -> HeldUpstream:
        url = self._thread.__enter__()
        self.binding = (f"{{provider: openai, base_url: '{url}/v1', api_key_env: HELD_UPSTREAM_KEY, model: fake, "
                        "max_retries: 0}")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.gate.set()
        self._thread.__exit__(*exc)


async def _until_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _sse(data: dict) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"

"""The Starlette app of `ember serve`: `/v1/models`, `/v1/chat/completions` (JSON or SSE), `/healthz`,
`/metrics`; authentication, body limits, backpressure, deadlines, client disconnects, the access log.

Every failure is an OpenAI error object with its status, so the official SDK raises its usual
exceptions (`NotFoundError`, `AuthenticationError`, `RateLimitError`, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import openai_shapes as shapes
from .keys import Key, KeyRing
from .metrics import CONTENT_TYPE, Metrics
from .openai_shapes import ApiError
from .options import ServeOptions
from .session import Outcome, Prepared, Session

access_log = logging.getLogger("ember.serve.access")
CLIENT_GONE = 499  # the status the access log and metrics give a request whose client left (nginx's)


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), exc.status, headers=exc.headers())


def _json(data: Any, status: int = 200) -> Response:
    return Response(shapes.encode(data), status, media_type="application/json")


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond `limit` bytes (before reading it when it says its size)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is over the server's limit of {limit} bytes",
                       code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is over the server's limit of {limit} bytes",
                           code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _disconnected(receive: Any) -> None:
    """Returns when the client goes away (after the body is read, the next message is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _Call:
    """What a chat request has learnt so far, for its metrics and access-log line."""

    __slots__ = ("start", "key", "model", "status", "prepared")

    def __init__(self, start: float) -> None:
        self.start = start
        self.key: Key | None = None
        self.model, self.status = "-", 200
        self.prepared: Prepared | None = None


class Server:
    """The routes over one `Session` (see the module docstring)."""

    def __init__(self, session: Session, keys: KeyRing, options: ServeOptions, metrics: Metrics) -> None:
        self.session, self.keys, self.options, self.metrics = session, keys, options, metrics
        created = shapes.now()
        self.model_list = {"object": "list", "data": [
            shapes.model_entry(m.name, m.description, created) for m in session.models.values()]}
        metrics.in_flight.set_function(lambda: session.admission.running)
        metrics.queued.set_function(lambda: len(session.admission.waiters))

    # -- routes ----------------------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        return self.logged(request, lambda: self.model_list, authenticate=True)

    async def model(self, request: Request) -> Response:
        def entry() -> dict[str, Any]:
            name = request.path_params["model"]
            found = next((m for m in self.model_list["data"] if m["id"] == name), None)
            return found if found is not None else self.session.model(name)  # unknown: raises the 404
        return self.logged(request, entry, authenticate=True)

    async def healthz(self, request: Request) -> Response:
        admission = self.session.admission
        return self.logged(request, lambda: {"status": "ok", "models": len(self.session.models),
                                             "in_flight": admission.running, "queued": len(admission.waiters)})

    async def prometheus(self, request: Request) -> Response:
        start = time.perf_counter()
        response = Response(self.metrics.text(), media_type=CONTENT_TYPE)
        self.done(request, "-", 200, start, None, None)
        return response

    def logged(self, request: Request, body: Any, *, authenticate: bool = False) -> Response:
        """A small JSON answer (`body()`), after the key check when asked, with its access-log line."""
        start = time.perf_counter()
        key = None
        try:
            if authenticate:
                key = self.keys.authenticate(request.headers.get("authorization"))
            response = _json(body())
        except ApiError as exc:
            response = _error(exc)
        self.done(request, "-", response.status_code, start, key, None)
        return response

    async def chat(self, request: Request) -> Response:
        call = _Call(time.perf_counter())
        start = call.start
        try:
            response = await self._chat(request, call)
        except BaseException:
            self.done(request, call.model, call.status, start, call.key, call.prepared)
            raise
        if call.prepared is None or not call.prepared.stream_started:
            async def after() -> None:  # once the reply is sent: logging and metrics are not its latency
                self.done(request, call.model, call.status, start, call.key, call.prepared)
            response.background = after  # type: ignore[assignment]  # starlette awaits any callable
        return response

    async def _chat(self, request: Request, call: _Call) -> Response:
        try:
            call.key = self.keys.authenticate(request.headers.get("authorization"))
            req = shapes.parse_request(await _body(request, self.options.max_body_bytes))
            served = self.session.model(req.model)
            call.model = served.name
            self.keys.admit(call.key)  # a key's limits, before any upstream call
            prepared = call.prepared = self.session.prepare(served, req)
            if req.stream:
                include_usage = req.stream_options is not None and req.stream_options.include_usage
                return _Stream(self, prepared, call.key, call.start, include_usage)
            # the run goes in this task and one watcher task cancels it if the client leaves: a task and an
            # `asyncio.wait` fewer per request than running it in a task of its own
            task = asyncio.current_task()
            assert task is not None
            running = [True]
            gone = asyncio.ensure_future(_disconnected(request.receive))
            gone.add_done_callback(lambda g: running[0] and not g.cancelled() and task.cancel())
            try:
                outcome = await self.run(prepared)
            except asyncio.CancelledError:
                if not gone.done() or gone.cancelled():
                    raise  # cancelled from outside (the server is stopping), not by the client leaving
                task.uncancel()  # the client left: its run's upstream requests were cancelled
                call.status = CLIENT_GONE
                return Response(status_code=CLIENT_GONE)
            finally:
                running[0] = False
                gone.cancel()
            return _json(self.completion_body(prepared, outcome))
        except ApiError as exc:
            call.status = exc.status
            return _error(exc)

    # -- running ---------------------------------------------------------------------------------------
    async def run(self, prepared: Prepared, on_text: Any = None) -> Outcome:
        """Admission, then the request's runs, within the request deadline.

        Raises:
            ApiError: 429 (queue full, a budget), 502/500 (the run failed), 504 (the deadline passed).
        """
        admission = self.session.admission
        try:
            async with asyncio.timeout(self.options.timeout_s):
                await admission.acquire()
                try:
                    return await self.session.complete(prepared, on_text)
                finally:
                    admission.release()
        except TimeoutError:
            raise ApiError(504, f"the request did not finish within the server's deadline of "
                                f"{self.options.timeout_s:g} s", code="timeout") from None

    def completion_body(self, prepared: Prepared, outcome: Outcome) -> dict[str, Any]:
        return shapes.completion("chatcmpl-" + prepared.run_id, prepared.served.name, shapes.now(),
                                 outcome.contents, self.usage(outcome), self.ember(prepared, outcome))

    @staticmethod
    def usage(outcome: Outcome) -> dict[str, Any]:
        u = outcome.usage
        return shapes.usage_json(u.input_tokens, u.output_tokens, u.cached_tokens)

    @staticmethod
    def ember(prepared: Prepared, outcome: Outcome) -> dict[str, Any]:
        """The `ember` field: what the runs took, beyond OpenAI's usage."""
        u = outcome.usage
        out: dict[str, Any] = {"run_id": prepared.run_id, "seeds": prepared.seeds, "calls": u.calls,
                               "requests": u.requests, "cost_usd": u.cost_usd, "cache_hits": u.cache_hits}
        if u.estimated:
            out["cost_estimated"] = True
        if any(outcome.trace_ids):
            out["trace_ids"] = outcome.trace_ids
        return out

    def done(self, request: Request, model: str, status: int, start: float, key: Key | None,
             prepared: Prepared | None) -> None:
        """Metrics (chat requests: `model` is not "-"), the key's spend and the access-log line of a request."""
        seconds = time.perf_counter() - start
        usage = prepared.usage if prepared is not None else None
        if key is not None and usage is not None:
            key.spend(usage.cost_known)
        if model != "-":
            self.metrics.observe(model, status, seconds, usage)
        if self.options.access_log and access_log.isEnabledFor(logging.INFO):
            scope = request.scope  # read the scope: starlette's `url` and `client` build objects
            client = scope.get("client")
            where = f"{client[0]}:{client[1]}" if client else "-"
            extra = f" calls={usage.calls} cost_usd={usage.cost_usd}" if usage is not None else ""
            access_log.info('%s "%s %s" %d model=%s key=%s %.1fms%s', where, scope["method"], scope["path"],
                            status, model, key.name if key else "-", seconds * 1000, extra)


class _Stream:
    """An SSE answer (an ASGI app of its own, to watch for the client leaving while the run goes).

    The response starts with the first text (or with the run's end): an error before any text is a real
    HTTP error status; one after it is an `{"error": ...}` event, which the SDK raises as `APIError`.
    """

    def __init__(self, server: Server, prepared: Prepared, key: Key | None, start: float,
                 include_usage: bool) -> None:
        self.server, self.prepared, self.key, self.start = server, prepared, key, start
        self.include_usage = include_usage
        self._id, self._created = "chatcmpl-" + prepared.run_id, shapes.now()
        prepared.stream_started = True  # the stream logs its own request

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        status = 200
        events: asyncio.Queue[bytes | ApiError | None] = asyncio.Queue()
        producer = asyncio.ensure_future(self._produce(events))
        gone = asyncio.ensure_future(_disconnected(receive))
        gone.add_done_callback(lambda _: producer.cancel())
        try:
            status = await self._send_events(events, send)
        finally:
            if not producer.done():
                producer.cancel()
                with contextlib.suppress(BaseException):
                    await producer
            if producer.cancelled():  # the client left before the answer ended
                status = CLIENT_GONE
            gone.cancel()
            self.server.done(request, self.prepared.served.name, status, self.start, self.key, self.prepared)

    async def _send_events(self, events: asyncio.Queue, send: Any) -> int:
        started = False
        async for event in _drain(events):
            if isinstance(event, ApiError):
                if not started:
                    response = _error(event)
                    await send({"type": "http.response.start", "status": event.status,
                                "headers": response.raw_headers})
                    await send({"type": "http.response.body", "body": response.body})
                    return event.status
                await send({"type": "http.response.body", "body": shapes.sse(event.body()), "more_body": True})
                await send({"type": "http.response.body", "body": shapes.DONE, "more_body": True})
                break
            if not started:
                started = True
                await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
                await send({"type": "http.response.body", "body": self._opening(), "more_body": True})
            await send({"type": "http.response.body", "body": event, "more_body": True})
        else:
            if not started:  # cancelled before anything was sent
                return CLIENT_GONE
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return 200

    def _opening(self) -> bytes:
        p = self.prepared
        return b"".join(shapes.chunk(self._id, p.served.name, self._created, i, {"role": "assistant", "content": ""})
                        for i in range(len(p.seeds)))

    async def _produce(self, events: asyncio.Queue) -> None:
        p, server = self.prepared, self.server
        name = p.served.name
        streamed = [False] * len(p.seeds)

        def on_text(i: int):
            def put(delta: str) -> None:
                if delta:
                    streamed[i] = True
                    events.put_nowait(shapes.chunk(self._id, name, self._created, i, {"content": delta}))
            return put

        try:
            outcome = await server.run(p, on_text)
            for i, text in enumerate(outcome.contents):
                if not streamed[i]:  # the answer did not come from one streamed model call: one chunk
                    events.put_nowait(shapes.chunk(self._id, name, self._created, i, {"content": text}))
            for i, text in enumerate(outcome.contents):
                # what streamed is the model's whole reply; the answer read from it may be shorter
                extra = {"ember": {"answer": text}} if streamed[i] else None
                events.put_nowait(shapes.chunk(self._id, name, self._created, i, {}, "stop", extra))
            if self.include_usage:
                events.put_nowait(shapes.usage_chunk(self._id, name, self._created, server.usage(outcome),
                                                     server.ember(p, outcome)))
            events.put_nowait(shapes.DONE)
        except ApiError as exc:
            events.put_nowait(exc)
        finally:
            events.put_nowait(None)


async def _drain(events: asyncio.Queue) -> AsyncIterator[Any]:
    while (event := await events.get()) is not None:
        yield event


_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]  # nginx: pass each chunk on at once


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (an unknown route or method), as OpenAI error objects."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"no route {request.method} {request.url.path}" if status in (404, 405) else "internal error"
    return _error(ApiError(status, message, code="not_found" if status == 404 else None))


def build_app(session: Session, keys: KeyRing, options: ServeOptions, metrics: Metrics | None = None) -> Starlette:
    """The ASGI app over `session`; its lifespan closes the session (flushes the trace) on shutdown."""
    server = Server(session, keys, options, metrics or Metrics())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await session.aclose()

    app = Starlette(routes=[
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/v1/models/{model:path}", server.model, methods=["GET"]),
        Route("/v1/chat/completions", server.chat, methods=["POST"]),
        Route("/healthz", server.healthz, methods=["GET"]),
        Route("/metrics", server.prometheus, methods=["GET"]),
    ], exception_handlers={HTTPException: _http_error}, lifespan=lifespan)
    app.state.server = server
    return app

"""`ember serve`: every spec in the paths as an OpenAI-compatible model (docs/serving.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ember_compiler import api

from .app import (
    CacheModeOpt,
    CacheOpt,
    MaxCallsOpt,
    MaxCostOpt,
    MaxTokensOpt,
    NoCacheOpt,
    NoPassOpt,
    OtlpOpt,
    SchedulerOpt,
    SetOpt,
    app,
    errors,
    run_options,
)


@app.command()
def serve(
    paths: Annotated[list[Path], typer.Argument(help="Spec files or folders (every spec `ember validate` finds); "
                                                     "each is a model named by the spec's name.")],
    host: Annotated[str, typer.Option(help="Address to listen on. Without keys only a loopback address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key_env: Annotated[str | None, typer.Option(
        "--api-key-env", help="Environment variable holding the key every client must send as "
                              "'Authorization: Bearer KEY'.")] = None,
    keys: Annotated[Path | None, typer.Option(
        "--keys", help="Keys file (YAML/JSON): client keys with per-key rpm and cost_per_day_usd.")] = None,
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="Allow a non-loopback --host without keys: anyone who reaches it can spend.")] = False,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1,
                                                 help="Chat requests running at once.")] = 64,
    queue: Annotated[int, typer.Option("--queue", min=0, help="Requests waiting beyond --max-concurrency; "
                                                              "more are answered 429 with Retry-After.")] = 256,
    timeout: Annotated[float, typer.Option("--timeout", help="A request's deadline in seconds (504 after it).")] = 600.0,
    max_body: Annotated[int, typer.Option("--max-body-bytes", min=1, help="Larger request bodies get 413.")] = 1_000_000,
    allow_set: Annotated[list[str] | None, typer.Option(
        "--allow-set", help="A --set PATH a request may override in extra_body ember.set (repeat).")] = None,
    trace: Annotated[Path, typer.Option("--trace", help="The rotating JSONL file request traces go to.")] = Path(
        ".ember/serve/trace.jsonl"),
    no_trace: Annotated[bool, typer.Option("--no-trace", help="Write no traces.")] = False,
    trace_max_mb: Annotated[float, typer.Option("--trace-max-mb", help="Rotate the trace file at this size.")] = 100.0,
    grace: Annotated[float, typer.Option("--grace", help="On SIGTERM, seconds to let requests in flight finish.")] = 30.0,
    no_access_log: Annotated[bool, typer.Option("--no-access-log", help="No access-log line per request.")] = False,
    set: SetOpt = None,
    scheduler: SchedulerOpt = "parallel",
    max_cost: MaxCostOpt = None,
    max_calls: MaxCallsOpt = None,
    max_tokens: MaxTokensOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    cache_mode: CacheModeOpt = "read-write",
    no_pass: NoPassOpt = None,
    otlp: OtlpOpt = None,
) -> None:
    """Serve specs as OpenAI-compatible models (/v1/models, /v1/chat/completions, /healthz, /metrics).

    The budget flags bound the whole server (every request together); a spec's own budget: bounds each request.
    """
    with errors():
        run = run_options(scheduler=scheduler, set_items=set, no_pass=no_pass, max_cost=max_cost,
                          max_calls=max_calls, max_tokens=max_tokens, cache=cache, no_cache=no_cache,
                          cache_mode=cache_mode, otlp=otlp).replace(runs_dir=None)
        options = api.ServeOptions(
            host=host, port=port, api_key_env=api_key_env, keys_file=keys, insecure_no_auth=insecure_no_auth,
            max_concurrency=max_concurrency, queue=queue, timeout_s=timeout, max_body_bytes=max_body,
            allow_set=tuple(allow_set or ()), trace=None if no_trace else trace,
            trace_max_bytes=int(trace_max_mb * 1_000_000), grace_s=grace, access_log=not no_access_log, run=run)
        api.serve(paths, options)

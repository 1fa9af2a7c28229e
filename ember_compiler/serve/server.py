"""Putting a server together: check the specs and the security settings, load the keys, build the
session and the app, and run it on uvicorn (SIGTERM: stop accepting, drain within the grace period)."""

from __future__ import annotations

import gc
import ipaddress
import logging
import sys
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from ..compiler.check import validate_paths
from ..errors import SpecInvalid, UsageError
from .app import build_app
from .keys import KeyRing, key_from_env, load_keys
from .options import ServeOptions
from .session import Session, load_models

log = logging.getLogger("ember.serve")
# uvloop where it is installed (a dependency but on Windows), else asyncio's loop: libuv's C event loop
# takes about a fifth off a served request's CPU (its scheduling, timers, socket reads and writes)
LOOP = "auto"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_ring(options: ServeOptions) -> KeyRing:
    """The client keys of `--api-key-env` and `--keys` (none: no authentication, loopback only).

    Raises:
        UsageError: a missing variable, a bad keys file, or a non-loopback host without keys and
            without `--insecure-no-auth`.
    """
    keys = []
    if options.api_key_env:
        keys.append(key_from_env(options.api_key_env))
    if options.keys_file is not None:
        keys += load_keys(options.keys_file)
    if not keys and not is_loopback(options.host) and not options.insecure_no_auth:
        raise UsageError(f"--host {options.host} is not a loopback address: give --api-key-env or --keys so "
                         "that only clients with a key can call it (or --insecure-no-auth to serve anyone)")
    return KeyRing(keys)


def build(paths: list[Path], options: ServeOptions) -> Starlette:
    """The app serving the specs in `paths`, checked as `ember validate` checks them.

    Raises:
        SpecInvalid: a spec is invalid (every diagnostic).
        UsageError, ConfigError: no spec, two specs with one name, keys or settings at fault, a
            missing provider key.
    """
    diagnostics = validate_paths([str(p) for p in paths])
    if any(d.severity == "error" for d in diagnostics):
        raise SpecInvalid([d for d in diagnostics if d.severity == "error"])
    keys = key_ring(options)
    session = Session(load_models(paths, options.run), options)
    return build_app(session, keys, options)


def uvicorn_config(app: Starlette, **settings: Any) -> Any:
    """uvicorn's `Config` for the app, as `ember serve` runs it (the tests' servers use it too): on
    `LOOP`, with the one-write `HttpProtocol`, without uvicorn's access log (the app logs each request)."""
    import uvicorn  # only a running server needs it

    from .http_protocol import HttpProtocol

    return uvicorn.Config(app, access_log=False, log_level="warning", lifespan="on", loop=LOOP, http=HttpProtocol,
                          server_header=False, **settings)


def serve(paths: list[Path], options: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM (see `build` for what is raised before it starts)."""
    import uvicorn

    app = build(paths, options)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    names = ", ".join(app.state.server.session.models)
    log.info("ember serve: %s on http://%s:%d/v1%s", names, options.host, options.port,
             "" if app.state.server.keys.enabled else " (no keys: loopback only)")
    for warning in app.state.server.session.runtime.warnings:
        log.warning("warning: %s", warning)
    server = uvicorn.Server(uvicorn_config(app, host=options.host, port=options.port, backlog=4096,
                                           timeout_graceful_shutdown=options.grace_s))
    # what start-up built (specs, plans, templates, imported modules) lives as long as the server: keep
    # it out of the collector, whose full passes over it otherwise stall every request in flight (a
    # pass over the ~60,000 objects of a freshly started server takes 5-45 ms)
    gc.collect()
    gc.freeze()
    server.run()

"""A real uvicorn server in a thread on a free loopback port, for the `ember serve` tests and the bench.

    with ServerThread(app) as url:      # url = "http://127.0.0.1:PORT"
        openai.OpenAI(base_url=url + "/v1", api_key="k").chat.completions.create(...)

Leaving the block asks uvicorn to shut down as SIGTERM does (stop accepting, drain) and waits for it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any


class ServerThread:
    def __init__(self, app: Any, **config: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning", lifespan="on",
                                                    **config))
        self.server.install_signal_handlers = lambda: None  # not the main thread: no signal handlers
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
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

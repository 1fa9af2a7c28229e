"""An Ember provider plugin for Ollama's native chat API (`POST /api/chat`) — the example adapter.

Ember's provider layer is replaceable: any object with `name`, `supports_n`, `complete(request)`,
`aclose()` and `default_concurrency(binding)` can serve `provider: NAME`, and Ember puts the same
concurrency gate, RPM/TPM buckets, cool-down, retries, top-up of samples and cost accounting around
it. The contract for `complete`:

- make ONE attempt (Ember owns retries) and return a `Completion` with the texts and token usage;
- on failure raise `ProviderError(message, status=..., retryable=..., retry_after_s=...)`, or let the
  wrapped library's exception through: an integer `status_code`/`status` attribute and the
  `Retry-After` header of an attached `response` are understood, timeouts and connection errors are
  retried, anything else is final;
- with a fixed `seed`, add `request.meta["sample_offset"]`, so that split samples differ;
- honour `request.schema` (a JSON Schema for judge/select/verify replies) if the API can, else ignore it;
- never put the API key in an exception message.

Wrapping a client library a team already uses looks the same: build its request from
`request.messages` and `request.model` (the spec's binding), call it with its own retries turned off,
and copy its usage numbers into the `Completion`.
"""

from __future__ import annotations

from typing import Any

import httpx2

from ember_compiler.errors import ConfigError, ProviderError
from ember_compiler.providers.base import Completion, Request

DEFAULT_BASE_URL = "http://127.0.0.1:11434"


class OllamaProvider:
    name = "ollama"
    supports_n = False  # one sample per request: Ember splits an ensemble into separate requests
    timeout_s = 120.0  # the runtime bounds every attempt by this (or the binding's timeout_s)

    def __init__(self, base_url: str | None = None, *, transport: httpx2.AsyncBaseTransport | None = None,
                 timeout_s: float = 120.0) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx2.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport)

    def default_concurrency(self, binding: dict[str, Any]) -> int:
        return 4  # Ollama's default OLLAMA_NUM_PARALLEL

    async def complete(self, request: Request) -> Completion:
        b = request.model
        seed = b.get("seed")
        if seed is not None:  # the samples of one op arrive as separate requests: keep them distinct
            seed += request.meta.get("sample_offset", 0)
        options = {"temperature": b.get("temperature"), "top_p": b.get("top_p"),
                   "num_predict": b.get("max_tokens"), "seed": seed}
        body: dict[str, Any] = {"model": b["model"], "messages": request.messages, "stream": False,
                                "options": {k: v for k, v in options.items() if v is not None}}
        if request.schema is not None and b.get("structured_output") is not False:
            body["format"] = {k: v for k, v in request.schema.items() if k != "title"}
        try:
            resp = await self._client.post("/api/chat", json=body)
        except httpx2.TransportError as exc:  # includes timeouts
            raise ProviderError(f"cannot reach {self.base_url}: {type(exc).__name__}", retryable=True) from None
        if resp.status_code != 200:
            try:
                message = resp.json().get("error") or resp.text
            except ValueError:
                message = resp.text
            raise ProviderError(f"HTTP {resp.status_code}: {message}"[:300], status=resp.status_code,
                                retryable=resp.status_code in (408, 429) or resp.status_code >= 500)
        data = resp.json()
        return Completion(
            texts=[(data.get("message") or {}).get("content") or ""],
            input_tokens=int(data.get("prompt_eval_count") or 0),
            output_tokens=int(data.get("eval_count") or 0),
            model=data.get("model"),
            finish_reasons=[data.get("done_reason") or ""],
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def factory(binding: dict[str, Any], *, transport: httpx2.AsyncBaseTransport | None = None) -> OllamaProvider:
    """What the entry point names: one provider per (provider, base_url, api_key_env) of a run."""
    return OllamaProvider(binding.get("base_url"), transport=transport, timeout_s=binding.get("timeout_s") or 120.0)


def check_binding(binding_name: str, binding: dict[str, Any]) -> None:
    """Called before any request (`ember run`, `ember eval`): fail early and clearly."""
    if not binding.get("model"):
        raise ConfigError(f"model '{binding_name}' (provider ollama) needs `model:` (for example llama3.2)")


factory.check_binding = check_binding  # type: ignore[attr-defined]

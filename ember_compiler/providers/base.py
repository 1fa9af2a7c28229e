"""The provider interface: one request in, one completion (with ``n`` texts) out.

Ops never see a wire format; providers never see the plan. A request carries, besides the chat
messages, ``meta`` — what the op knows about the call (role, candidates, ground truth, seeding). Real
providers ignore ``meta``; the sim provider (DESIGN §3) is driven by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(slots=True)
class Request:
    binding: str  # name of the model binding in the spec
    model: dict[str, Any]  # the binding: provider, model, temperature, max_tokens, ...
    messages: list[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content": "..."}]
    n: int = 1  # samples wanted from this one request
    meta: dict[str, Any] = field(default_factory=dict)
    # meta keys set by ops/runtime:
    #   role: "generate" | "judge" | "select" | "verify"
    #   candidates: list[str] (judge/select) ; candidate: str (verify)
    #   truth: expected answer or None ; choices: list[str] | None
    #   seed: int ; example_id: str ; node_id: str ; sample_offset: int
    #   sim: per-row sim overrides (the row's "sim" field) or None


@dataclass(slots=True)
class Completion:
    texts: list[str]
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None  # the model that answered, as the provider reports it
    finish_reasons: list[str] = field(default_factory=list)
    response_id: str | None = None


@runtime_checkable
class Provider(Protocol):
    """A model provider. One instance per (provider, endpoint); shared by all calls of a run."""

    name: str
    supports_n: bool  # True when one request can return n samples

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...

    def default_concurrency(self, binding: dict[str, Any]) -> int:
        """Calls in flight per model when the spec sets no `limits.concurrency`."""
        ...

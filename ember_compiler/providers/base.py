"""The provider interface: one request in, one completion (with ``n`` texts) out.

Ops never see a wire format; providers never see the plan. A request carries, besides the chat
messages, ``meta`` — what the op knows about the call (role, candidates, ground truth, seeding). Real
providers ignore ``meta`` (except ``sample_offset``, which shifts a fixed seed so split requests
differ); the sim provider (DESIGN §3) is driven by it.

A provider makes **one attempt** per `complete` call and raises `ProviderError` (with `status`,
`retryable`, `retry_after_s`) when it fails: the runtime owns retries, rate limits and cool-downs,
so that every provider — built-in or plugin — gets the same ones. A provider that supports `n` may
return fewer texts than asked (a server that caps or ignores `n`); the runtime asks for the rest.

**Samples that are not answers.** A refusal, a reply blocked by a safety filter, or an empty reply (a
reasoning model that spent ``max_tokens`` thinking) is never an answer. A provider records one as the
text ``""`` and says why in its finish reason: ``refusal`` (OpenAI's ``refusal`` field, Anthropic's
``stop_reason: refusal``), a filter's reason (OpenAI ``content_filter``, Gemini ``SAFETY``,
``RECITATION``, ...), a length (``length``, ``max_tokens``, ``MAX_TOKENS``) or anything else. Texts stay
aligned with the samples; `answers.no_answer(text, reason)` is the one rule every reader (ops, usage,
trace) applies (`no_answers(completion)` per sample): ``"refusal"``, ``"blocked"``, ``"length"`` or ``"empty"``, or None for an answer.

**Usage is the server's claim, checked by the runtime.** A provider reads token counts with
`token_count` (a count that is not a non-negative integer — ``-5``, ``1.5``, ``"lots"`` — reads as
`INVALID_TOKENS`, never an exception) and sets `usage_missing` when the response has no usage; the
runtime (`runtime/attempts.py`) replaces what is invalid or missing by its estimate, caps output
tokens at ``max_tokens`` per sample and drops samples beyond ``n``, with a run warning each.

**Streaming.** When `Request.on_text` is set and ``n == 1``, a provider that can stream (`openai` and
every OpenAI-compatible server, `local`, `anthropic`, `gemini`, `sim`) uses its streaming wire format
and calls ``on_text(delta)`` with each piece of the answer text as it arrives — answer text only, never
reasoning/thinking deltas nor a structured reply's tool-call JSON — and returns the very `Completion`
it would have returned without streaming (all texts, usage with cached tokens, finish reasons, model,
rate-limit headers; a refusal or a blocked reply is still the text ``""`` with its reason, though
deltas sent before the stop cannot be taken back). A provider that cannot stream ignores `on_text`:
the runtime then calls it once with the whole text (`runtime/streaming.py`). `on_text` must not raise
(an exception it raises fails the request, and is not retried).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..answers import no_answer_kinds


@dataclass(slots=True)
class Request:
    binding: str  # name of the model binding in the spec
    model: dict[str, Any]  # the binding: provider, model, temperature, max_tokens, ...
    messages: list[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content": "..."}]
    n: int = 1  # samples wanted from this one request
    meta: dict[str, Any] = field(default_factory=dict)
    # A JSON Schema the reply should follow (judge/select/verify), with a "title" naming it. Providers
    # whose API can enforce a schema use it unless the binding sets `structured_output: false`; the
    # others ignore it, and the op reads the text conventions instead.
    schema: dict[str, Any] | None = None
    # Streaming (see "Streaming" above): called with each delta of the answer text as it arrives. Not
    # part of what the request *is*: excluded from equality, repr, cache keys, plan hashes and traces.
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    # meta keys set by ops/runtime:
    #   role: "generate" | "judge" | "select" | "verify"
    #   candidates: list[str] (judge/select) ; candidate: str (verify)
    #   truth: expected answer or None ; choices: list[str] | None
    #   seed: int ; example_id: str ; node_id: str ; sample_offset: int
    #   sim: per-row sim overrides (the row's "sim" field) or None ; truths: the row's per-node truths or None
    #   upstream: {node id: answer or answers} of the nodes a model call reads (absent when it reads none)


@dataclass(slots=True)
class RateLimits:
    """What a response's headers said about the rate limits (None: not reported).

    `*_limit` are per-minute limits, `*_remaining` what is left in the current window, `*_reset_s`
    seconds until that window is full again.
    """

    requests_limit: float | None = None
    requests_remaining: float | None = None
    requests_reset_s: float | None = None
    tokens_limit: float | None = None
    tokens_remaining: float | None = None
    tokens_reset_s: float | None = None


@dataclass(slots=True)
class Completion:
    texts: list[str]
    input_tokens: int = 0  # all prompt tokens, cached ones included
    output_tokens: int = 0  # all generated tokens, reasoning ("thinking") included
    model: str | None = None  # the model that answered, as the provider reports it
    finish_reasons: list[str] = field(default_factory=list)
    response_id: str | None = None
    cached_tokens: int = 0  # of input_tokens, read from the provider's prompt cache
    cache_write_tokens: int = 0  # of input_tokens, written to the prompt cache (Anthropic)
    cache_write_1h_tokens: int = 0  # of cache_write_tokens, written with the 1-hour lifetime (Anthropic)
    rate_limits: RateLimits | None = None
    usage_missing: bool = False  # the response carried no usage: the runtime charges its estimate
    usage_estimated: bool = False  # set by the runtime: the token counts are its estimate, not the server's

    def extend(self, other: Completion) -> None:
        """Append `other`'s samples and add its token counts (a request answered in parts)."""
        self.texts += other.texts
        self.finish_reasons += other.finish_reasons
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cache_write_1h_tokens += other.cache_write_1h_tokens
        self.usage_estimated = self.usage_estimated or other.usage_estimated


@runtime_checkable
class Provider(Protocol):
    """A model provider. One instance per (provider, endpoint); shared by all calls of a run."""

    name: str
    supports_n: bool  # True when one request can return n samples

    async def complete(self, request: Request) -> Completion:
        """One attempt; raise `ProviderError` on failure (see the module docstring)."""
        ...

    async def aclose(self) -> None: ...

    def default_concurrency(self, binding: dict[str, Any]) -> int:
        """Calls in flight per model when the spec sets no `limits.concurrency`."""
        ...


def no_answers(completion: Completion) -> list[str | None]:
    """`answers.no_answer` for each sample of a completion, in order (None: an answer)."""
    return no_answer_kinds(completion.texts, completion.finish_reasons)


INVALID_TOKENS = -1  # a usage count the server reported that is not a non-negative integer


def token_count(usage: dict[str, Any], *keys: str) -> int:
    """The sum of `usage`'s counts at `keys` (absent or null: 0), or `INVALID_TOKENS` when one of them
    is not a non-negative integer (a bool, a negative or fractional number, a string): never raises."""
    total = 0
    for key in keys:
        value = usage.get(key)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return INVALID_TOKENS
        total += value
    return total

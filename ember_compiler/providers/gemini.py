"""Gemini `generateContent` (`POST {base_url}/models/{model}:generateContent`) over httpx2.

One attempt per `complete` (the runtime retries). The key goes in the `x-goog-api-key` header, never
in the URL. Samples use `candidateCount` (at most 8 per request; the runtime asks for the rest).
Structured output sets `responseMimeType: application/json` with a `responseSchema` (the OpenAPI
subset Gemini reads). A 429 carries its wait in the body (`google.rpc.RetryInfo.retryDelay`, there
is no Retry-After header); a `QuotaFailure` on a per-day quota is final.

A request with `on_text` (and n == 1) goes to `:streamGenerateContent?alt=sse`: every event is a
`GenerateContentResponse` holding the next parts of the candidate's text (thought parts are not sent
to `on_text`); the last one has the finish reason and the usage (`usageMetadata`). There is no end
marker: the stream's end is the reply's, and a candidate still without a finish reason then is a
retryable failure. The chunks are put back together into the response `parse` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ProviderError
from . import capabilities
from .base import Completion, Request, token_count
from .http import HTTPProvider, duration_s

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
MAX_CANDIDATES = capabilities.RULES["gemini"]["n_limit"]  # candidateCount per request
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


class GeminiProvider(HTTPProvider):
    name = "gemini"
    supports_n = True
    default_base_url = DEFAULT_BASE_URL

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def url(self, binding: dict[str, Any]) -> str:
        model = str(binding.get("model") or "").removeprefix("models/")
        return f"/models/{model}:generateContent"

    def body(self, request: Request) -> dict[str, Any]:
        b = request.model
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        contents = [{"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
                    for m in request.messages if m["role"] != "system"]
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {}
        if request.n != 1:
            n = min(request.n, capabilities.gemini(b).n_limit or MAX_CANDIDATES)
            if n != 1:
                config["candidateCount"] = n
        for key, name in (("temperature", "temperature"), ("top_p", "topP"), ("max_tokens", "maxOutputTokens")):
            if b.get(key) is not None:
                config[name] = b[key]
        if b.get("seed") is not None:
            config["seed"] = b["seed"] + request.meta.get("sample_offset", 0)
        if self.use_schema(b, request.schema):
            config["responseMimeType"] = "application/json"
            config["responseSchema"] = openapi_schema(request.schema)  # type: ignore[arg-type]
        if config:
            body["generationConfig"] = config
        return body

    async def complete(self, request: Request) -> Completion:
        body, timeout_s = self.body(request), self.timeout_for(request.model)
        if request.on_text is not None and request.n == 1:
            url = self.url(request.model).replace(":generateContent", ":streamGenerateContent") + "?alt=sse"
            chunks = Chunks(request.on_text)
            data, _ = await self.post_stream(url, body, chunks.reader(self), timeout_s=timeout_s)
            return parse(data if data is not None else chunks.response())
        data, _ = await self.post(self.url(request.model), body, timeout_s=timeout_s)
        return parse(data)

    def error_info(self, data: dict[str, Any]) -> tuple[str, Any, bool]:
        # {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED", "details": [...]}}
        err = data.get("error")
        if not isinstance(err, dict):
            return super().error_info(data)
        status = err.get("status")
        message = " ".join(str(err.get("message") or status or "").split())[:500]  # one line
        exhausted = any(
            "perday" in str(v.get("quotaId", "")).lower() or "per_day" in str(v.get("quotaId", "")).lower()
            for d in _details(err, _QUOTA_FAILURE) for v in d.get("violations") or () if isinstance(v, dict))
        return (f"{status}: {message}" if status and status not in message else message), err.get("code"), exhausted

    def key_rejected(self, data: dict[str, Any]) -> bool:
        # a wrong key is a 400 INVALID_ARGUMENT whose ErrorInfo says API_KEY_INVALID
        err = data.get("error")
        return isinstance(err, dict) and any(d.get("reason") == "API_KEY_INVALID" for d in _details(err, _ERROR_INFO))

    def body_retry_after_s(self, data: dict[str, Any]) -> float | None:
        err = data.get("error")
        for d in _details(err, _RETRY_INFO) if isinstance(err, dict) else ():
            delay = duration_s(str(d.get("retryDelay") or ""))
            if delay is not None:
                return delay
        return None


class Chunks:
    """The `GenerateContentResponse` chunks of one streamed reply, put back together as one response."""

    __slots__ = ("on_text", "head", "candidates")

    def __init__(self, on_text: Callable[[str], None]) -> None:
        self.on_text = on_text
        self.head: dict[str, Any] = {}  # usageMetadata, modelVersion, responseId, promptFeedback (the last seen)
        self.candidates: dict[int, dict[str, Any]] = {}  # index -> answer text parts, thought parts, finishReason

    def reader(self, provider: GeminiProvider) -> Callable[[str, str], bool]:
        def read(event: str, data: str) -> bool:
            chunk = provider.event_json(data)
            try:
                self.add(chunk)
            except (AttributeError, TypeError):
                raise ProviderError("HTTP 200 with a malformed chunk in the stream", status=200) from None
            return False  # no end marker: the stream ends with the reply
        return read

    def add(self, chunk: dict[str, Any]) -> None:
        for key in ("usageMetadata", "modelVersion", "responseId", "promptFeedback"):
            if chunk.get(key) is not None:
                self.head[key] = chunk[key]
        for c in chunk.get("candidates") or ():
            i = c.get("index") or 0
            acc = self.candidates.get(i)
            if acc is None:
                acc = self.candidates[i] = {"text": [], "thought": [], "finishReason": None}
            for part in (c.get("content") or {}).get("parts") or ():
                text = part.get("text")
                if not text:
                    continue
                if part.get("thought"):
                    acc["thought"].append(text)
                else:
                    acc["text"].append(text)
                    self.on_text(text)
            if c.get("finishReason"):
                acc["finishReason"] = c["finishReason"]

    def response(self) -> dict[str, Any]:
        """The response the chunks make up (what `parse` reads)."""
        if any(a["finishReason"] is None for a in self.candidates.values()):
            raise ProviderError("HTTP 200 but the stream ended before the reply was complete", status=200,
                                retryable=True)
        candidates = []
        for i, a in sorted(self.candidates.items()):
            parts = ([{"text": "".join(a["thought"]), "thought": True}] if a["thought"] else []) + \
                [{"text": "".join(a["text"])}]
            candidates.append({"index": i, "finishReason": a["finishReason"],
                               "content": {"role": "model", "parts": parts}})
        return {**self.head, **({"candidates": candidates} if candidates else {})}


def _details(err: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    details = err.get("details")
    return [d for d in details if isinstance(d, dict) and d.get("@type") == kind] if isinstance(details, list) else []


def openapi_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema as Gemini's `responseSchema` (OpenAPI 3 subset: upper-case types, property order)."""
    out: dict[str, Any] = {}
    if "type" in schema:
        out["type"] = str(schema["type"]).upper()
    for key in ("description", "enum", "format", "nullable", "minimum", "maximum", "minItems", "maxItems"):
        if key in schema:
            out[key] = schema[key]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: openapi_schema(v) for k, v in schema["properties"].items()}
        out["propertyOrdering"] = list(schema["properties"])  # the model writes reasoning before the answer
    if "required" in schema:
        out["required"] = list(schema["required"])
    if isinstance(schema.get("items"), dict):
        out["items"] = openapi_schema(schema["items"])
    return out


# FinishReason values meaning a filter stopped the candidate (its content, if any, is not an answer)
BLOCKED_FINISH = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE",
                            "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"})


def parse(data: dict[str, Any]) -> Completion:
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        block = (data.get("promptFeedback") or {}).get("blockReason") if isinstance(data.get("promptFeedback"), dict) \
            else None
        if block:
            raise ProviderError(f"the prompt was blocked ({block})", status=200)
        raise ProviderError("HTTP 200 with no candidates in the response", status=200)
    texts, reasons = [], []
    try:
        for c in sorted(candidates, key=lambda c: c.get("index", 0)):
            parts = (c.get("content") or {}).get("parts") or []
            # thought summaries (thinking models) are not the answer; a blocked candidate (SAFETY,
            # RECITATION, ...) is "" whatever it holds (providers/base.py)
            reason = c.get("finishReason") or ""
            blocked = reason in BLOCKED_FINISH
            texts.append("" if blocked else "".join(p.get("text") or "" for p in parts if not p.get("thought")))
            reasons.append(reason)
    except (AttributeError, TypeError):
        raise ProviderError("HTTP 200 with malformed candidates in the response", status=200) from None
    usage = data.get("usageMetadata") if isinstance(data.get("usageMetadata"), dict) else {}
    return Completion(
        texts=texts,
        input_tokens=token_count(usage, "promptTokenCount", "toolUsePromptTokenCount"),
        # thinking tokens are billed as output
        output_tokens=token_count(usage, "candidatesTokenCount", "thoughtsTokenCount"),
        model=data.get("modelVersion"),
        finish_reasons=reasons,
        response_id=data.get("responseId"),
        cached_tokens=max(0, token_count(usage, "cachedContentTokenCount")),
        usage_missing=not isinstance(data.get("usageMetadata"), dict),
    )

"""What a model accepts on the wire: the one place the HTTP providers ask before building a body.

The facts come from data where data can say them: the price table shipped in the package
(`ember_compiler/data/prices.json`, a LiteLLM snapshot) marks reasoning models (`reasoning`) and the
Anthropic models that reject sampling parameters (`sampling_params: false`). The rest are the APIs'
documented rules (`RULES`). A binding overrides them for an OpenAI-compatible server that differs:
`max_tokens_field` (`max_tokens` | `max_completion_tokens`) and `n_limit` (samples per request).

`Capabilities.dropped` lists the sampling parameters a binding sets that the body leaves out; the
runtime warns once per binding (`runtime/pool.py`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

# provider -> the API's own rules (see docs/providers.md, "What Ember sends")
RULES: dict[str, dict[str, Any]] = {
    # Chat Completions: `n` is capped at 128 (OpenAPI `CreateChatCompletionRequest`); reasoning models
    # reject the deprecated `max_tokens` (400 `unsupported_parameter`) and take `max_completion_tokens`
    "openai": {"n_limit": 128},
    # Messages API: the `anthropic-version` header on every request; no `n`; current models reject
    # `temperature` and `top_p` together (Ember sends temperature only)
    "anthropic": {"api_version": "2023-06-01", "n_limit": 1},
    # generateContent: `candidateCount` at most 8
    "gemini": {"n_limit": 8},
}
MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
VENDOR_URLS = {"openai": "https://api.openai.com/v1"}


@functools.cache
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files("ember_compiler.data").joinpath("prices.json").read_text(encoding="utf-8")
    return json.loads(text)["models"]


def model_facts(vendor: str, model: str | None) -> dict[str, Any] | None:
    """The table's entry for `model` at `vendor` (accepts `vendor/model` and Gemini's `models/`), or None."""
    if not model:
        return None
    models = _table().get(vendor) or {}
    for name in (model, model.removeprefix(f"{vendor}/"), model.removeprefix("models/")):
        entry = models.get(name)
        if entry is not None:
            return entry
    return None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The wire facts of one binding at one endpoint."""

    max_tokens_field: str = "max_tokens"  # OpenAI: `max_tokens` or `max_completion_tokens`
    n_limit: int | None = None  # samples one request may ask for (None: no limit)
    temperature: bool = True  # the model accepts `temperature`
    top_p: bool = True  # the model accepts `top_p`
    temperature_with_top_p: bool = True  # ... and both in one request
    api_version: str | None = None  # Anthropic's `anthropic-version`

    def sampling(self, binding: dict[str, Any]) -> dict[str, Any]:
        """The binding's `temperature` / `top_p` that this model takes."""
        out = {}
        if binding.get("temperature") is not None and self.temperature:
            out["temperature"] = binding["temperature"]
        if binding.get("top_p") is not None and self.top_p \
                and (self.temperature_with_top_p or "temperature" not in out):
            out["top_p"] = binding["top_p"]
        return out

    def dropped(self, binding: dict[str, Any]) -> list[str]:
        """The binding's sampling parameters the body leaves out (a warning each)."""
        kept = self.sampling(binding)
        return [k for k in ("temperature", "top_p") if binding.get(k) is not None and k not in kept]


def openai(binding: dict[str, Any], *, vendor: bool) -> Capabilities:
    return _openai(binding.get("model"), binding.get("max_tokens_field"), binding.get("n_limit"), vendor)


@functools.lru_cache(maxsize=256)
def _openai(model: str | None, field: str | None, n_limit: int | None, vendor: bool) -> Capabilities:
    """Chat Completions. `vendor`: the request goes to OpenAI's own API (not a compatible server).

    `max_completion_tokens` for the table's reasoning models — and, on OpenAI's API, for any model
    the table does not know (a new model: the API takes that field for every model; only the old one
    is rejected by some). Compatible servers get `max_tokens`, the field they all read.
    """
    facts = model_facts("openai", model)
    known_reasoning = bool(facts and facts.get("reasoning"))
    if field is None:
        field = "max_completion_tokens" if (known_reasoning if facts is not None else vendor) else "max_tokens"
    # reasoning models reject any temperature/top_p but the default: leave them out (a warning each)
    return Capabilities(max_tokens_field=field, n_limit=int(n_limit or RULES["openai"]["n_limit"]),
                        temperature=not known_reasoning, top_p=not known_reasoning)


def anthropic(binding: dict[str, Any]) -> Capabilities:
    return _anthropic(binding.get("model"))


@functools.lru_cache(maxsize=256)
def _anthropic(model: str | None) -> Capabilities:
    """Messages: temperature only, never with top_p; neither for models the table marks."""
    facts = model_facts("anthropic", model) or {}
    sampling = facts.get("sampling_params", True) is not False
    return Capabilities(n_limit=1, temperature=sampling, top_p=sampling, temperature_with_top_p=False,
                        api_version=RULES["anthropic"]["api_version"])


def gemini(binding: dict[str, Any]) -> Capabilities:
    """generateContent: `candidateCount` up to 8 (a binding's `n_limit` may lower it)."""
    limit = RULES["gemini"]["n_limit"]
    return _gemini(min(limit, int(binding["n_limit"])) if binding.get("n_limit") else limit)


@functools.lru_cache(maxsize=16)
def _gemini(n_limit: int) -> Capabilities:
    return Capabilities(n_limit=n_limit)


def for_binding(binding: dict[str, Any], base_url: str | None = None) -> Capabilities | None:
    """The capabilities of a built-in HTTP provider's binding (None for other providers)."""
    provider = binding.get("provider")
    if provider == "openai":
        return openai(binding, vendor=(base_url or binding.get("base_url") or VENDOR_URLS["openai"]).rstrip("/")
                      == VENDOR_URLS["openai"])
    if provider == "anthropic":
        return anthropic(binding)
    if provider == "gemini":
        return gemini(binding)
    return None

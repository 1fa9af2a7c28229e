"""What a request costs: the binding's `price:`, else the price table shipped in the package.

The table (`ember_compiler/data/prices.json`) is a trimmed, dated snapshot of LiteLLM's MIT-licensed
price list (chat models of openai, anthropic and gemini; regenerate with `data/make_prices.py`). It
prices the vendors' own APIs: an `openai` binding with a custom `base_url` (vLLM, OpenRouter, …) is
not looked up — its price is the server's business, so set `price:`. A model with no price has an
unknown cost (None, never 0) and the runtime warns once. `sim`, `local` and `sandbox` are free unless priced.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..providers.base import Completion

FREE_PROVIDERS = frozenset({"sim", "local", "sandbox"})
VENDORS = ("openai", "anthropic", "gemini")
_VENDOR_URLS = {"openai": "https://api.openai.com/v1"}  # the endpoints whose list prices the table holds


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token. Cached input tokens cost `cache_read` (Anthropic cache writes `cache_write`, the
    1-hour ones `cache_write_1h`, else 2x input); prompts longer than `tier_above_tokens` are billed at
    the tier's rates."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    tier_above_tokens: int | None = None
    tier_input: float | None = None
    tier_output: float | None = None
    tier_cache_read: float | None = None

    def cost(self, c: Completion) -> float:
        inp, out, read = self.input, self.output, self.cache_read
        if self.tier_above_tokens is not None and c.input_tokens > self.tier_above_tokens:
            inp = self.tier_input if self.tier_input is not None else inp
            out = self.tier_output if self.tier_output is not None else out
            read = self.tier_cache_read if self.tier_cache_read is not None else read
        read = inp if read is None else read
        write = inp if self.cache_write is None else self.cache_write
        fresh = max(0, c.input_tokens - c.cached_tokens - c.cache_write_tokens)
        cost = fresh * inp + c.cached_tokens * read + c.cache_write_tokens * write + c.output_tokens * out
        if c.cache_write_1h_tokens:  # 1-hour cache writes: 2x the input rate, not the 5-minute rate
            long = 2 * inp if self.cache_write_1h is None else self.cache_write_1h
            cost += c.cache_write_1h_tokens * (long - write)
        return cost


FREE = Price(0.0, 0.0)
_PRICE_FIELDS = frozenset(Price.__dataclass_fields__)  # the table's other fields are limits and capabilities


def from_spec(price: dict[str, Any]) -> Price:
    """A binding's `price: {input_per_mtok, output_per_mtok, cached_input_per_mtok?}` (USD per million)."""
    cached = price.get("cached_input_per_mtok")
    return Price(price["input_per_mtok"] / 1e6, price["output_per_mtok"] / 1e6,
                 None if cached is None else cached / 1e6)


@functools.cache
def table() -> dict[str, Any]:
    text = resources.files("ember_compiler.data").joinpath("prices.json").read_text(encoding="utf-8")
    return json.loads(text)


def lookup(vendor: str, model: str) -> Price | None:
    """The table's price of `model` at `vendor` (accepts `vendor/model` and Gemini's `models/` prefix)."""
    models = table()["models"].get(vendor) or {}
    for name in (model, model.removeprefix(f"{vendor}/"), model.removeprefix("models/")):
        entry = models.get(name)
        if entry is not None:
            return Price(**{k: v for k, v in entry.items() if k in _PRICE_FIELDS})
    return None


def price_for(binding: dict[str, Any]) -> tuple[Price | None, str | None]:
    """(price or None, why unknown) for a binding."""
    if binding.get("price"):
        return from_spec(binding["price"]), None
    provider = str(binding.get("provider"))
    if provider in FREE_PROVIDERS:
        return FREE, None
    model = binding.get("model")
    if not model:
        return None, "no model named"
    base_url = (binding.get("base_url") or "").rstrip("/")
    if provider == "openai" and base_url and base_url != _VENDOR_URLS["openai"]:
        return None, f"a custom base_url ({base_url}) is not in the price table"
    if provider in VENDORS:
        found = lookup(provider, str(model))
    else:  # a plugin: `vendor/model` names the vendor, else any vendor that lists this model
        vendor, _, rest = str(model).partition("/")
        found = lookup(vendor, rest) if vendor in VENDORS and rest else None
        for v in VENDORS:
            found = found or lookup(v, str(model))
    if found is None:
        info = table()
        return None, f"not in the price table ({info['snapshot_date']} snapshot)"
    return found, None

"""The provider registry: binding checks before any call, instance keys, and construction.

`PROVIDERS` maps a `provider:` name to a factory `factory(binding, *, transport) -> Provider`, which
may carry a `check_binding(binding_name, binding)` attribute for pre-flight checks. Plugins add
factories through the entry-point group `ember.providers` (loaded on first use) or
`register_provider`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import httpx2

from ..errors import ConfigError
from ..spec.diagnostics import did_you_mean
from . import local as _local
from .anthropic import DEFAULT_BASE_URL as ANTHROPIC_URL
from .anthropic import AnthropicProvider
from .base import Provider
from .gemini import DEFAULT_BASE_URL as GEMINI_URL
from .gemini import GeminiProvider
from .http import key_env, read_key
from .openai import DEFAULT_BASE_URL, OpenAIProvider
from .sandbox import SandboxProvider
from .sim import SimProvider, build_config

ENTRY_POINT_GROUP = "ember.providers"
Factory = Callable[..., Provider]

# provider -> (class, default key variable, default base_url, example model)
_HTTP = {
    "openai": (OpenAIProvider, "OPENAI_API_KEY", DEFAULT_BASE_URL, "gpt-4o-mini"),
    "anthropic": (AnthropicProvider, "ANTHROPIC_API_KEY", ANTHROPIC_URL, "claude-haiku-4-5"),
    "gemini": (GeminiProvider, "GEMINI_API_KEY", GEMINI_URL, "gemini-2.5-flash"),
}


# -- built-in providers -------------------------------------------------------------------------------

def api_key_env(binding: dict[str, Any]) -> str | None:
    """The variable holding the key of an openai/anthropic/gemini binding (None: send no key)."""
    _, env, url, _ = _HTTP[str(binding.get("provider"))]
    return key_env(binding, env, url)


def secret_env(binding: dict[str, Any]) -> str | None:
    """The variable a binding's key is read from, for any provider (plugins name theirs in `api_key_env`)."""
    return binding.get("api_key_env") or (api_key_env(binding) if binding.get("provider") in _HTTP else None)


def _http_factory(provider: str) -> Factory:
    cls = _HTTP[provider][0]

    def factory(binding: dict[str, Any], *, transport: httpx2.AsyncBaseTransport | None = None) -> Provider:
        env = api_key_env(binding)
        return cls(binding.get("base_url"), read_key(env),
                   transport=transport, timeout_s=binding.get("timeout_s") or 60)

    def check(binding_name: str, binding: dict[str, Any]) -> None:
        where = f"model '{binding_name}' (provider {provider})"
        env = api_key_env(binding)
        if env and not read_key(env):  # stripped; a key a header cannot carry is refused by name
            raise ConfigError(f"{where} needs an API key: set {env}")
        for key, only in (("max_tokens_field", ("openai",)), ("n_limit", ("openai", "gemini"))):
            if binding.get(key) is not None and provider not in only:
                raise ConfigError(f"{where}: `{key}` applies to provider {' and '.join(only)} only")
        # an OpenAI-compatible server may serve one unnamed model; the vendors' APIs need a name
        if not binding.get("model") and (provider != "openai" or not binding.get("base_url")):
            raise ConfigError(f"{where} needs `model:` (for example {_HTTP[provider][3]})")

    factory.check_binding = check  # type: ignore[attr-defined]
    return factory


def _local_provider(binding: dict[str, Any], *, transport: httpx2.AsyncBaseTransport | None = None) -> Provider:
    kwargs: dict[str, Any] = {"transport": transport}
    if binding.get("timeout_s"):
        kwargs["timeout_s"] = binding["timeout_s"]
    return _local.LocalProvider(_local.resolve_model_path(binding), **kwargs)


def _check_local(binding_name: str, binding: dict[str, Any]) -> None:
    if not _local.have_xllamacpp():
        raise ConfigError(f"model '{binding_name}' (provider local) needs the llama.cpp server: "
                          f"{_local.INSTALL_LOCAL}")
    _local.check_model_file(_local.resolve_model_path(binding), binding_name)


def _sim(binding: dict[str, Any], *, transport: httpx2.AsyncBaseTransport | None = None) -> Provider:
    return SimProvider()


def _check_sim(binding_name: str, binding: dict[str, Any]) -> None:
    try:
        build_config(binding)
    except ConfigError as exc:
        raise ConfigError(f"model '{binding_name}' (provider sim): {exc}") from None


def _sandbox(binding: dict[str, Any], *, transport: httpx2.AsyncBaseTransport | None = None) -> Provider:
    return SandboxProvider()


_local_provider.check_binding = _check_local  # type: ignore[attr-defined]
_sim.check_binding = _check_sim  # type: ignore[attr-defined]

PROVIDERS: dict[str, Factory] = {**{name: _http_factory(name) for name in _HTTP},
                                 "local": _local_provider, "sim": _sim, "sandbox": _sandbox}


def register_provider(name: str, factory: Factory) -> None:
    """Add (or replace) a provider in this process; entry points do the same for installed plugins."""
    PROVIDERS[name] = factory


@functools.cache
def _entry_points() -> dict[str, Any]:
    try:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # noqa: BLE001 - a broken installed distribution must not break validation or runs
        return {}


def known_providers() -> list[str]:
    """Every `provider:` name: built-ins, `register_provider` calls and `ember.providers` plugins."""
    return sorted({*PROVIDERS, *_entry_points()})


def _factory(binding_name: str | None, provider: Any) -> Factory:
    model = f"model '{binding_name}'" if binding_name else "a model"
    if not provider:
        raise ConfigError(f"{model} needs `provider:` (one of {', '.join(known_providers())})")
    factory = PROVIDERS.get(provider)
    if factory is not None:
        return factory
    ep = _entry_points().get(provider)
    if ep is None:
        hint = did_you_mean(str(provider), known_providers())
        raise ConfigError(f"{model}: unknown provider '{provider}'"
                          + (f"; {hint}" if hint else f" (known: {', '.join(known_providers())})"))
    factory = PROVIDERS[provider] = ep.load()
    return factory


# -- the API the runtime uses ------------------------------------------------------------------------

def provider_key(binding: dict[str, Any]) -> tuple:
    """Calls whose bindings share this key share one provider instance (and its connection pool)."""
    provider = str(binding.get("provider"))
    if provider in ("sim", "sandbox"):
        return (provider,)
    if provider == "local":
        return ("local", _local.resolve_model_path(binding))
    base_url = (binding.get("base_url") or "").rstrip("/") or None
    if provider in _HTTP:
        return (provider, base_url or _HTTP[provider][2], api_key_env(binding))
    return (provider, base_url, binding.get("api_key_env"))


def check_binding(binding_name: str, binding: dict[str, Any]) -> None:
    """Raise ConfigError for a binding that cannot work: unknown provider, missing key, missing extra."""
    check = getattr(_factory(binding_name, binding.get("provider")), "check_binding", None)
    if check is not None:
        check(binding_name, binding)


def create_provider(binding: dict[str, Any], *, transport: httpx2.AsyncBaseTransport | None = None) -> Provider:
    """A new provider instance for this binding (the caller shares it per `provider_key`)."""
    return _factory(None, binding.get("provider"))(binding, transport=transport)

"""The provider pool: one provider per (provider, endpoint), one gate per model, and each binding
resolved once to a `Target` (provider, gate, price, timeout, retries)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..errors import binding_label
from ..providers import capabilities, registry
from ..providers.base import Provider
from ..providers.http import MIN_SECRET_CHARS, read_key, scrubbable
from ..xcs.plan import Plan, PlanNode
from . import prices
from .gates import Gate
from .limits import Limiter
from .retry import DEFAULT_MAX_RETRIES

DEFAULT_TIMEOUT_S = 60.0  # for plugin providers that do not say


class Target:
    """A binding resolved to its provider, gate, price and call settings."""

    __slots__ = ("binding", "provider", "gate", "price", "model_name", "provider_name", "timeout_s",
                 "max_retries")

    def __init__(self, binding: dict[str, Any], provider: Provider, gate: Gate, price: prices.Price | None) -> None:
        self.binding = binding
        self.provider = provider
        self.gate = gate
        self.price = price
        self.provider_name = binding["provider"]
        self.model_name = binding.get("model") or binding["provider"]
        timeout = binding.get("timeout_s") or getattr(provider, "timeout_s", DEFAULT_TIMEOUT_S)
        self.timeout_s = float(timeout) if timeout else None  # None: no timer (the in-process sim)
        retries = binding.get("max_retries")
        self.max_retries = DEFAULT_MAX_RETRIES if retries is None else int(retries)


class ProviderPool:
    """Providers, gates and targets of one runtime; `warn` receives one line per unpriced model.

    `gates` makes a model's gate, given (key, provider, limit, rpm, tpm, local): `cluster.GateFactory`
    puts the gates of shared models in the cluster's actor; None: every gate is this process's own.
    """

    def __init__(self, *, transport: Any = None, warn: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable[Any]] | None = None,
                 gates: Callable[..., Gate] | None = None) -> None:
        self.transport = transport
        self._warn = warn
        self._clock, self._sleep = clock, sleep
        self._gate_factory = gates
        self.providers: dict[tuple, Provider] = {}
        self.gates: dict[tuple, Gate] = {}
        self._targets: dict[int, Target] = {}
        self.secrets: set[str] = set()  # API keys read by targets: scrubbed from every message

    def prepare(self, plan: Plan) -> None:
        """Check every binding the plan calls (keys, extras) before any call is made."""
        for name in sorted(called_models(plan)):
            registry.check_binding(name, plan.models[name])
            self.target(plan.models[name], name)

    def target(self, binding: dict[str, Any], name: str | None = None) -> Target:
        target = self._targets.get(id(binding))
        if target is None:
            target = self._targets[id(binding)] = self._resolve(binding, name)
        return target

    def _resolve(self, binding: dict[str, Any], name: str | None) -> Target:
        key = registry.provider_key(binding)
        provider = self.providers.get(key)
        if provider is None:
            provider = self.providers[key] = registry.create_provider(binding, transport=self.transport)
        gate_key = (*key, binding.get("model"))
        gate = self.gates.get(gate_key)
        if gate is None:
            gate = self.gates[gate_key] = self._gate(gate_key, provider, binding)
        price, why = prices.price_for(binding)
        if price is None:
            self._warn(f"no price for {binding['provider']} model '{binding.get('model') or '?'}'"
                       f"{f' (binding {name!r})' if name else ''}: {why}; its cost is reported as unknown "
                       "(null) — set `price:` on the binding to count it")
        caps = capabilities.for_binding(binding)
        for key in caps.dropped(binding) if caps is not None else ():
            why = ("the Messages API takes temperature or top_p, not both: temperature is sent"
                   if caps.temperature else "this model rejects sampling parameters")
            self._warn(f"{binding_label(name or '?', binding)}: `{key}` not sent ({why})")
        env = registry.secret_env(binding)
        key = read_key(env)  # stripped, as the provider sends it
        if key and not scrubbable(key):
            self._warn(f"the key in {env} is shorter than {MIN_SECRET_CHARS} characters: it is not scrubbed "
                       "from output (scrubbing it would mangle every message)")
        elif key:
            self.secrets.add(key)
        # keyed by id(): the target holds the binding, so the id stays unique while cached
        return Target(binding, provider, gate, price)

    def _gate(self, gate_key: tuple, provider: Provider, binding: dict[str, Any]) -> Gate:
        limits = binding.get("limits") or {}
        limit = limits.get("concurrency") or provider.default_concurrency(binding)
        rpm, tpm = limits.get("rpm"), limits.get("tpm")

        def local() -> Gate:
            return Gate(limit, Limiter(rpm, tpm, clock=self._clock, sleep=self._sleep))
        return local() if self._gate_factory is None else self._gate_factory(gate_key, provider, limit, rpm, tpm, local)

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        self.providers.clear()


def called_models(plan: Plan | Iterable[PlanNode]) -> set[str]:
    """Bindings called by `llm` nodes of `plan` (or of a list of nodes), including those inside `map` sub-plans."""
    nodes = plan.nodes if isinstance(plan, Plan) else plan
    used: set[str] = set()
    for n in nodes:
        if n.kind == "llm":
            used.add(n.params["model"])
            used.update(n.params.get("racers") or ())  # a race calls each of its bindings
        elif n.kind == "map":
            used |= called_models(n.subplan)
    return used

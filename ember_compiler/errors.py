"""Errors the library raises; the CLI maps each class to one exit code (DESIGN §7)."""

from __future__ import annotations

from typing import Any


class EmberError(Exception):
    """Base of every error Ember reports to a user as one clear line."""

    exit_code = 1


class UsageError(EmberError):
    """Bad command-line usage (unknown --set path, malformed --input, ...)."""

    exit_code = 2


class SpecInvalid(EmberError):
    """A spec failed loading or validation; carries every diagnostic found."""

    def __init__(self, diagnostics: list) -> None:
        self.diagnostics = list(diagnostics)
        first = self.diagnostics[0].render() if self.diagnostics else "invalid spec"
        more = len(self.diagnostics) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))


class ConfigError(EmberError):
    """A model binding or environment problem found before any call (missing key, missing extra)."""


class ProviderError(EmberError):
    """A model request failed. Providers raise it for one attempt; the runtime decides on retries.

    `status` is the HTTP status (None for transport errors and timeouts); `retryable` says whether
    the same request may succeed later; `retry_after_s` is the server's hint (`retry-after-ms`,
    `Retry-After`, Gemini's `RetryInfo`); `rate_limits` the limits the response headers reported.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after_s: float | None = None, rate_limits: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.rate_limits = rate_limits


def binding_label(name: str, binding: dict | None = None) -> str:
    """How every error names a binding: `model 'judge' (openai gpt-4o-mini)`, or `model 'judge'`
    when the binding is not at hand."""
    if not binding or not binding.get("provider"):
        return f"model '{name}'"
    return f"model '{name}' ({binding['provider']} {binding.get('model') or binding['provider']})"


class OutputError(EmberError):
    """A model answered, but its reply cannot be used (structured output that is not JSON, no answer).

    ``binding`` names the model binding. Ops know only its name; the executor, which knows its
    provider and model, re-raises the error ``naming`` them: ``model 'm' (openai gpt-4o-mini): ...``.
    """

    def __init__(self, reason: str, binding: str | None = None, model: dict | None = None) -> None:
        self.reason, self.binding = reason, binding
        super().__init__(f"{binding_label(binding, model)}: {reason}" if binding is not None else reason)

    def naming(self, model: dict) -> OutputError:
        return OutputError(self.reason, self.binding, model) if self.binding is not None else self


class BudgetExceeded(EmberError):
    """A run reached its budget (cost, calls or tokens): no further call was started."""

    exit_code = 3


class NodeFailed(EmberError):
    """A plan node failed; names the node and where it came from in the spec."""

    def __init__(self, node_id: str, source: str | None, cause: BaseException) -> None:
        self.node_id = node_id
        self.cause = cause
        where = f" ({source})" if source else ""
        super().__init__(f"node '{node_id}'{where} failed: {cause}")

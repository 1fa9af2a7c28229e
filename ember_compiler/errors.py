"""Errors the library raises; the CLI maps each class to one exit code (DESIGN §7)."""

from __future__ import annotations


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
    """A provider call failed for good (after any retries)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class NodeFailed(EmberError):
    """A plan node failed; names the node and where it came from in the spec."""

    def __init__(self, node_id: str, source: str | None, cause: BaseException) -> None:
        self.node_id = node_id
        self.cause = cause
        where = f" ({source})" if source else ""
        super().__init__(f"node '{node_id}'{where} failed: {cause}")

"""Model providers: one module per wire format, and the registry that picks one per binding."""

from .base import Completion, Provider, Request
from .registry import check_binding, create_provider, known_providers, provider_key

__all__ = ["Completion", "Provider", "Request", "check_binding", "create_provider", "known_providers",
           "provider_key"]

"""`Model`: a model binding as a Python value (the `models:` entries of a spec).

A `Model` is immutable and compares by content, so it is a good pytree leaf: swap every binding of a
network with one `tree_map`. Bindings are validated by the same pydantic model as specs.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from ember_compiler.errors import EmberError
from ember_compiler.spec.model import NAME_PATTERN, ModelBinding
from ember_compiler.xcs.plan import canonical_json


class Model:
    """A model binding: ``Model(provider="sim", accuracy=0.7, latency_ms=200)``.

    Args:
        name: the binding's name in plans and specs (``models: {NAME: ...}``); by default the
            provider's name, numbered when several different bindings share it (``sim``, ``sim-2``).
        **fields: the binding's fields, as in a spec (``provider``, ``model``, ``temperature``,
            ``limits``, the sim fields, ...).

    Raises:
        EmberError: a field is unknown or has a wrong value (the message names it).
    """

    __slots__ = ("name", "_binding", "_key")

    def __init__(self, name: str | None = None, **fields: Any) -> None:
        if name is not None and not re.match(NAME_PATTERN, name):
            raise EmberError(f"Model name '{name}' must be letters, digits, '-' or '_'")
        try:
            checked = ModelBinding.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise EmberError(f"Model({where}=...): {err['msg']}") from None
        object.__setattr__(self, "name", name)
        # keep the fields as given (defaults stay implicit, like a spec's `models:` entry)
        object.__setattr__(self, "_binding", checked.model_dump(exclude_unset=True, by_alias=True, mode="json"))
        object.__setattr__(self, "_key", canonical_json([name, self._binding]))

    @classmethod
    def of(cls, value: Model | dict[str, Any]) -> Model:
        """A `Model` from a `Model` or a binding mapping (how `init:` in a spec passes one)."""
        if isinstance(value, Model):
            return value
        if isinstance(value, dict):
            data = dict(value)
            return cls(data.pop("name", None), **data)
        raise EmberError(f"expected a Model or a binding mapping such as {{'provider': 'sim'}}, got {value!r}")

    @property
    def binding(self) -> dict[str, Any]:
        """The binding as plain JSON (a copy)."""
        return dict(self._binding)

    @property
    def provider(self) -> str:
        return self._binding["provider"]

    def replace(self, **changes: Any) -> Model:
        """A copy with some fields changed (``name=`` renames)."""
        name = changes.pop("name", self.name)
        return Model(name, **{**self._binding, **changes})

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Model is immutable: use .replace(...)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._binding.items())
        return f"Model({f'name={self.name!r}, ' if self.name else ''}{fields})"

    def __reduce__(self) -> tuple:
        return (_rebuild, (self.name, self._binding))


def _rebuild(name: str | None, binding: dict[str, Any]) -> Model:
    return Model(name, **binding)


def as_model(value: Any, owner: str, field: str = "model") -> Model:
    """`value` as a `Model`, or an error naming the operator and field."""
    try:
        return Model.of(value)
    except EmberError as exc:
        raise EmberError(f"{owner}: {field}: {exc}") from None

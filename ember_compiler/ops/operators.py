"""Finding the class a `python` node names (`call:`), without importing anything until asked.

`call:` is `package.module:Name` (a dotted attribute path after the colon is allowed) or a short name
registered in the `ember.operators` entry-point group. Checking the *form* of a call and listing
registered names read only metadata; `resolve_operator` imports, and is used only when running a plan
and by `ember validate --import`.

NOTE: [Import resolution] a module is imported normally first (installed packages, PYTHONPATH, the
current directory when running `python -m`); when that fails because the module itself is missing,
the folder of the spec (or Python file) the node came from is appended to `sys.path` and the import
is retried. Appending (not prepending) means a spec folder never shadows an installed package.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ember_compiler.errors import EmberError

ENTRY_POINT_GROUP = "ember.operators"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
CALL_RE = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")


class OperatorNotFound(EmberError):
    """A `python` node's operator cannot be imported, or what it names is not an operator."""


def registered() -> dict[str, str]:
    """Short name -> `module:attr` of the `ember.operators` entry points (metadata only, no import)."""
    try:
        return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # a broken installed distribution must not break validation
        return {}


def call_problem(call: str) -> str | None:
    """Why `call` can never name an operator, or None. Imports nothing."""
    if CALL_RE.match(call):
        return None
    if ":" in call:
        return f"'{call}' is not of the form package.module:Name"
    names = registered()
    if call not in names:
        listing = ", ".join(sorted(names)) or "none are installed"
        return f"'{call}' is neither package.module:Name nor an operator registered in {ENTRY_POINT_GROUP} ({listing})"
    return None


def spec_folder(source: str | None) -> Path | None:
    """The folder of the file a plan node came from (`source` is `FILE:LINE:COL`)."""
    if not source:
        return None
    path = source.rsplit(":", 2)[0] if source.count(":") >= 2 else source
    return Path(path).resolve().parent


def resolve_operator(call: str, near: str | Path | None = None) -> type:
    """Import the operator class `call` names. Runs the module's top-level code.

    Raises:
        OperatorNotFound: not importable, no such attribute, or not an operator class.
    """
    if ":" not in call:
        eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if call not in eps:
            raise OperatorNotFound(call_problem(call) or f"unknown operator '{call}'")
        try:
            obj = eps[call].load()
        except Exception as exc:
            raise OperatorNotFound(f"cannot load operator '{call}' ({eps[call].value}): "
                                   f"{type(exc).__name__}: {exc}") from exc
    else:
        module_name, _, qualname = call.partition(":")
        try:
            obj = _import(module_name, near)
        except Exception as exc:
            raise OperatorNotFound(f"cannot import '{module_name}' for operator '{call}': "
                                   f"{type(exc).__name__}: {exc}") from exc
        for part in qualname.split("."):
            if not hasattr(obj, part):
                raise OperatorNotFound(f"module '{module_name}' has no attribute '{qualname}' (operator '{call}')")
            obj = getattr(obj, part)
    problem = operator_problem(obj)
    if problem:
        raise OperatorNotFound(f"'{call}' {problem}")
    return obj


def operator_problem(obj: Any) -> str | None:
    """Why `obj` is not an operator class (an `Input` and `Output` pydantic model and a `forward`)."""
    from pydantic import BaseModel

    if not inspect.isclass(obj):
        return f"is a {type(obj).__name__}, not an operator class"
    for name in ("Input", "Output"):
        model = getattr(obj, name, None)
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            return f"has no pydantic '{name}' model (subclass ember_compiler.Operator)"
    if not callable(getattr(obj, "forward", None)):
        return "has no forward method"
    return None


def _import(module_name: str, near: str | Path | None) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        top = module_name == missing or module_name.startswith(missing + ".")
        folder = str(Path(near).resolve()) if near is not None else None
        if not top or folder is None or folder in sys.path:
            raise
        sys.path.append(folder)
        importlib.invalidate_caches()
        return importlib.import_module(module_name)

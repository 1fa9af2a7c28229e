"""Runs (layer 7): how a plan is run (`RunOptions`), where a run keeps its files (`RunDir`), the one
place a runtime is built (`make_runtime`), and running one plan (`run_plan`).

Names load on first access, so `from ember_compiler.runs import RunOptions` does not import the runtime."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "budget_limits": "factory", "make_recorder": "factory", "make_runtime": "factory", "open_cache": "factory",
    "RunOptions": "options", "pass_name": "options",
    "RunResult": "run", "example_meta": "run", "execute_row": "run", "resolve_inputs": "run",
    "run_plan": "run", "run_plan_async": "run",
    "RUNS_DIR": "rundir", "RunDir": "rundir", "check_same_study": "rundir", "file_sha256": "rundir",
    "new_run_id": "rundir",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ember_compiler.runs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])

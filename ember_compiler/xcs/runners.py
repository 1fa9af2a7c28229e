"""Node runners: how the executor runs node kinds it cannot run itself (``python``: an SDK operator).

A runner factory takes (plan node, executor) once per executor and returns an async callable
``(input values, sink, meta, row) -> output ports``. The SDK registers the ``python`` runner when it is
imported; a plan run without importing it finds the runner through the ``ember.node_runners``
entry-point group (Ember's own package declares the SDK's there), so xcs never imports the SDK.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Any

from ..errors import EmberError

ENTRY_POINT_GROUP = "ember.node_runners"

NodeRunner = Callable[[dict[str, Any], Any, dict[str, Any], Any], Awaitable[dict[str, Any]]]
RunnerFactory = Callable[[Any, Any], NodeRunner]

RUNNERS: dict[str, RunnerFactory] = {}


def register_runner(kind: str, factory: RunnerFactory) -> None:
    RUNNERS[kind] = factory


def runner_for(kind: str) -> RunnerFactory:
    """The runner factory of a node kind.

    Raises:
        EmberError: none is registered, nor installed under ``ember.node_runners``.
    """
    if kind not in RUNNERS:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == kind:
                RUNNERS[kind] = ep.load()
                break
    if kind not in RUNNERS:
        raise EmberError(f"no runner for {kind} nodes: import ember_compiler.sdk (or install the package "
                         f"that provides it in the {ENTRY_POINT_GROUP} entry-point group)")
    return RUNNERS[kind]

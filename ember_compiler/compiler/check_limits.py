"""The checker's size rules (E314, E315): counts over their limits and the size of the inlined plan.

A mixin of ``Checker`` (``check_rules.py``). The inlined size of a spec is counted without inlining
anything: each spec's own nodes plus, per ``network``/``map`` node, its sub-spec's size, which the
session computed once per file. So a spec that would inline into 2^24 nodes is refused in time
linear in its files, and compile never starts on it.
"""

from __future__ import annotations

from typing import Any

from ember_compiler.spec.limits import DEFAULT, Limits
from ember_compiler.spec.refs import whole_reference

# static count fields -> the limit that caps them
_COUNT_LIMITS = {"n": "n", "max_rounds": "rounds"}


class LimitChecks:
    """Size rules; ``self`` is the ``Checker`` (its ``view``, ``subs``, ``stack``, ``error``)."""

    view: Any
    subs: dict[str, Any]
    stack: tuple[Any, ...]
    session: Any
    error: Any
    inlined: tuple[int, int]

    @property
    def limits(self) -> Limits:
        return getattr(self.session, "limits", DEFAULT)

    def _sizes(self) -> None:
        """Check counts against their limits and set ``self.inlined`` = (plan nodes, model calls)."""
        nodes = calls = 0
        for nid, node in self.view.nodes.items():
            if node is None:
                continue
            n, c = self._node_size(nid, node, ("nodes", nid))
            nodes, calls = nodes + n, calls + c
        self.inlined = (nodes, calls)
        if len(self.stack) > 1:
            return  # the including spec reports the total once
        limits = self.limits
        for what, count, cap in (("nodes", nodes, limits.nodes), ("calls", calls, limits.calls)):
            if count > cap:
                noun = "plan nodes" if what == "nodes" else "model calls per run"
                self.error(("nodes",), "E315", f"this spec inlines into {count:,} {noun} (limit {cap:,})",
                           f"raise the limit with --size-limit {what}=N if this is intended", key=True)

    def _node_size(self, nid: str, node: Any, base: tuple) -> tuple[int, int]:
        op = node.op
        if op == "network":
            sub = self.subs.get(nid)
            n, c = getattr(sub, "inlined", (0, 0))
            return n + 1, c
        if op == "map":
            over = getattr(node, "over", None)
            if isinstance(over, list) and len(over) > self.limits.fanout:
                self.error((*base, "over"), "E314", f"map over {len(over):,} items (limit {self.limits.fanout:,})",
                           "raise the limit with --size-limit fanout=N if this is intended")
            if node.node is not None:
                n, c = self._node_size(nid, node.node, (*base, "node"))
            else:
                n, c = getattr(self.subs.get(nid), "inlined", (0, 0))
            return n + 1, c
        counts = {name: self._count(nid, name, getattr(node, name), (*base, name))
                  for name in _COUNT_LIMITS if name in type(node).model_fields}
        if "max_rounds" in counts:
            rounds = counts["max_rounds"]
            return 2 * rounds + 1, 2 * rounds
        return 1, counts.get("n", 1)

    def _count(self, nid: str, name: str, value: Any, loc: tuple) -> int:
        """The static value of a count field (1 when unknown), reported when over its limit."""
        if isinstance(value, str) and (ref := whole_reference(value)) is not None and ref.head == "params":
            value = self.view.params.get(ref.tail)
        if not isinstance(value, int) or isinstance(value, bool):
            return 1
        cap = getattr(self.limits, _COUNT_LIMITS[name])
        if value > cap:
            self.error(loc, "E314", f"{name} of node '{nid}' is {value:,} (limit {cap:,})",
                       f"raise the limit with --size-limit {_COUNT_LIMITS[name]}=N if this is intended")
            return cap
        return max(value, 1)

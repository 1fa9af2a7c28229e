"""References in spec values: `${inputs.NAME}`, `${NODE.PORT}`, `${params.NAME}`.

A value that is exactly one reference takes the referenced value with its type; a reference inside a
longer string is interpolated as text (DESIGN §2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REF_RE = re.compile(r"\$\{\s*([^{}\s]*)\s*\}")
WHOLE_REF_RE = re.compile(r"^\s*\$\{\s*([^{}\s]*)\s*\}\s*$")


@dataclass(frozen=True, slots=True)
class Reference:
    """`${head.tail}`; head is `inputs`, `params` or a node id; tail is the name or port."""

    head: str
    tail: str  # "" when the reference has no dot (an error the checker reports)
    text: str  # the reference as written, e.g. "${a.answer}"
    start: int  # offset of "${" in the string it came from

    @property
    def namespace(self) -> str:
        return self.head if self.head in ("inputs", "params") else "node"


def _make(m: re.Match) -> Reference:
    body = m.group(1)
    head, _, tail = body.partition(".")
    return Reference(head=head, tail=tail, text=m.group(0), start=m.start())


def whole_reference(value: object) -> Reference | None:
    """The reference when `value` is exactly one `${...}`, else None."""
    if not isinstance(value, str):
        return None
    m = WHOLE_REF_RE.match(value)
    return _make(m) if m else None


def find_references(text: str) -> list[Reference]:
    return [_make(m) for m in REF_RE.finditer(text)]


def split_interpolated(text: str) -> list[str | Reference]:
    """Literal text and references in order, e.g. "Q: ${inputs.q}!" -> ["Q: ", Ref, "!"]."""
    parts: list[str | Reference] = []
    pos = 0
    for m in REF_RE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        parts.append(_make(m))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return parts

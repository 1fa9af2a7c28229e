"""The limits that keep a hostile or mistaken spec from exhausting the machine (docs/cost.md#limits).

One frozen `Limits` travels with validation, compilation and runs (`RunOptions.limits`, the
`validate`/`compile` API, the CLI's `--size-limit NAME=N`, `--max-spec-bytes` and `--allow-outside`).
The defaults sit far above any real spec; a limit that is hit is a positioned diagnostic at
validate time (E104, E313–E316) or one clear error at run time (a map's item count).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ember_compiler.errors import UsageError

# NOTE: [Depth ceiling] compile and check recurse once per sub-spec level (a few frames each);
# past this many levels Python's stack would overflow, so `--size-limit depth=` cannot go higher.
MAX_DEPTH_CEILING = 100


@dataclass(frozen=True)
class Limits:
    """Caps checked while reading, validating, compiling and running a spec.

    Args:
        spec_bytes: largest spec file read (bytes).
        allow_outside: allow `network`/`map` sub-specs outside the top spec's folder tree and the
            working directory.
        n: samples per node (`n:` of ensemble).
        rounds: `max_rounds` of refine.
        fanout: items one `map` node runs over (checked when the list is known, at run time).
        nodes: plan nodes after inlining sub-specs and unrolling rounds.
        calls: model calls per run, counted statically (a map counts once per item).
        depth: sub-spec nesting levels (at most `MAX_DEPTH_CEILING`).
    """

    spec_bytes: int = 2_000_000
    allow_outside: bool = False
    n: int = 10_000
    rounds: int = 1_000
    fanout: int = 100_000
    nodes: int = 20_000
    calls: int = 1_000_000
    depth: int = 32

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "allow_outside" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UsageError(f"limit {f.name} must be an integer >= 1, got {value!r}")
        if self.depth > MAX_DEPTH_CEILING:
            raise UsageError(f"limit depth cannot exceed {MAX_DEPTH_CEILING} (got {self.depth})")

    def with_items(self, items: list[str] | tuple[str, ...] | None) -> Limits:
        """A copy with `NAME=N` items applied (`--size-limit calls=5000000`).

        Raises:
            UsageError: an unknown name or a value that is not an integer >= 1.
        """
        changes: dict[str, int] = {}
        names = [f.name for f in fields(self) if f.name not in ("allow_outside", "spec_bytes")]
        for item in items or ():
            name, sep, value = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in names:
                raise UsageError(f"--size-limit takes NAME=N with NAME one of {', '.join(names)}; got '{item}'")
            try:
                changes[name] = int(value.replace("_", ""))
            except ValueError:
                raise UsageError(f"--size-limit {name}: '{value}' is not an integer") from None
        return replace(self, **changes)


DEFAULT = Limits()

__all__ = ["DEFAULT", "MAX_DEPTH_CEILING", "Limits"]

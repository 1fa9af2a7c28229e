"""Jinja2 in a sandbox: the one place templates are parsed and rendered.

Templates come from specs (trusted like a Makefile); values (inputs, model outputs, dataset fields)
are only ever passed as variables, never rendered as template source.

No template can take unbounded time or memory (docs/cost.md#limits):

- compiling folds no constants (`optimized=False`, and the size-changing operators are intercepted,
  which Jinja never folds), so `{{ 9**999999999 }}` costs nothing in `ember validate`;
- when rendering, `**`, `*`, `+` and `%` are checked before they run (`call_binop`): no number over
  `MAX_INT_BITS` bits, no string or list over `MAX_ITEMS`; filters and method calls that pad or repeat
  (`center`, `indent`, `format`, `ljust`, …) get no width over `MAX_ITEMS`; a `namespace` attribute
  holds no value over `MAX_ITEMS`;
- a render stops after `RENDER_SECONDS` (checked on every output chunk, `range` step, call and filter)
  and at `MAX_RENDERED_CHARS` of output, without building the whole text first.
"""

from __future__ import annotations

import contextvars
import math
import re
import time
from collections.abc import Callable, Iterator
from functools import lru_cache, wraps
from typing import Any

from jinja2 import StrictUndefined, meta, nodes
from jinja2.runtime import Namespace
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

MAX_RENDERED_CHARS = 1_000_000
MAX_ITEMS = 1_000_000  # characters of a string, items of a list, width of a padding
MAX_INT_BITS = 100_000  # about 30,000 decimal digits
RENDER_SECONDS = 5.0

_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("template_deadline", default=math.inf)
_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format string


class TemplateLimit(ValueError):
    """A template went over a size, operation or time limit while rendering."""


def _tick() -> None:
    if time.monotonic() > _deadline.get():
        raise TemplateLimit(f"template took more than {RENDER_SECONDS:g} s to render")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | dict) else 0


def _check_size(value: Any, what: str) -> Any:
    if _size(value) > MAX_ITEMS:
        raise TemplateLimit(f"{what} would hold {_size(value):,} items (limit {MAX_ITEMS:,})")
    return value


# filters and str methods whose int arguments size their result (a width, a count)
_SIZING = frozenset({"center", "ljust", "rjust", "zfill", "indent", "wordwrap", "truncate", "expandtabs",
                     "batch", "slice", "generate_lorem_ipsum"})  # the last is `lipsum()`


def _check_args(name: str, args: tuple, kwargs: dict) -> None:
    if name not in _SIZING:
        return
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_ITEMS:
            raise TemplateLimit(f"{name}: argument {arg:,} is over the limit of {MAX_ITEMS:,}")


def _check_format(name: str, fmt: Any) -> None:
    if isinstance(fmt, str) and _WIDTH.search(fmt):
        raise TemplateLimit(f"{name}: a format width or precision of {MAX_ITEMS:,} or more")


def _check_join(name: str, items: Any) -> None:
    if isinstance(items, list | tuple) and sum(_size(x) or 1 for x in items) > MAX_ITEMS:
        raise TemplateLimit(f"{name}: joining {len(items):,} items is over {MAX_ITEMS:,} characters")


def _int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"**", "*", "+", "%", "//"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and ints and abs(left) > 1 and right > 0 \
                and right * math.log2(abs(left)) > MAX_INT_BITS:
            raise TemplateLimit(f"{left} ** {right} is over {MAX_INT_BITS:,} bits")
        if operator == "*":
            if ints and _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
                raise TemplateLimit(f"a product over {MAX_INT_BITS:,} bits")
            count = right if isinstance(right, int) else left if isinstance(left, int) else 1
            seq = left if _size(left) else right
            if _size(seq) and isinstance(count, int) and _size(seq) * count > MAX_ITEMS:
                raise TemplateLimit(f"repeating {_size(seq):,} items {count:,} times is over {MAX_ITEMS:,}")
        if operator == "+" and _size(left) + _size(right) > MAX_ITEMS:
            raise TemplateLimit(f"joining {_size(left):,} and {_size(right):,} items is over {MAX_ITEMS:,}")
        if operator == "%":
            _check_format("%", left)
        return _check_size(super().call_binop(context, operator, left, right), f"'{operator}'")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        _tick()
        name = getattr(__obj, "__name__", "")
        _check_args(name, args, kwargs)
        if name == "join" and args:
            _check_join(name, args[0])
        return _check_size(super().call(__context, __obj, *args, **kwargs), "a call's result")


    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # `'{:>1000000000}'.format(x)`: refused before it runs
            _check_format(value.__name__, value.__self__)
        return wrapped


class _Namespace(Namespace):
    """`namespace()` whose attributes cannot grow past the size limit (`{% set ns.s = ns.s ~ ns.s %}`)."""

    def __setitem__(self, name: str, value: Any) -> None:
        _tick()
        super().__setitem__(name, _check_size(value, f"namespace attribute '{name}'"))


def _range(*args: int) -> Iterator[int]:
    for i, value in enumerate(safe_range(*args)):
        if not i & 1023:
            _tick()
        yield value


def _guarded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    first = 2 if hasattr(fn, "jinja_pass_arg") else 1  # after the value (and the context it is passed)

    @wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        _check_args(name, args[first:], kwargs)
        value = args[first - 1] if len(args) >= first else None
        if name == "format":
            _check_format(name, value)
        elif name == "join":
            _check_join(name, value)
        return _check_size(fn(*args, **kwargs), f"filter '{name}'")

    return guarded


_env = _Env(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, optimized=False)
_env.filters = {name: _guarded(name, fn) for name, fn in _env.filters.items()}
_env.globals.update(range=_range, namespace=_Namespace)


def environment() -> ImmutableSandboxedEnvironment:
    return _env


def parse(source: str) -> nodes.Template:
    """Parse a template; raises jinja2.TemplateSyntaxError (with .lineno) on bad syntax."""
    return _env.parse(source)


def variables(source: str) -> set[str]:
    """Top-level names a template reads (`{{ candidates.responses }}` reads `candidates`)."""
    return set(meta.find_undeclared_variables(parse(source)))


def expression_variables(source: str) -> set[str]:
    """Top-level names a `when:` expression reads."""
    return variables("{{ (" + source + ") }}")


@lru_cache(maxsize=4096)
def compiled(source: str) -> tuple[Any, dict[str, Any]]:
    """A template and its globals as one dict: jinja copies its globals' ChainMap into every render's
    context, a Python-level walk that cost a one-call request more than the rest of its render."""
    template = _env.from_string(source)
    return template, dict(template.globals)


@lru_cache(maxsize=4096)
def compiled_expression(source: str):
    return _env.compile_expression(source, undefined_to_none=False)


def render(source: str, context: dict[str, Any]) -> str:
    """Render `source` with `context` within the size and time limits.

    Raises:
        TemplateLimit: over `MAX_RENDERED_CHARS`, an operation's limit or `RENDER_SECONDS`.
    """
    template, names = compiled(source)
    token = _deadline.set(time.monotonic() + RENDER_SECONDS)
    try:
        parts: list[str] = []
        total = 0
        # what Template.generate does, with the globals already flat
        frame = _env.context_class(_env, {**names, **context}, template.name, template.blocks,
                                   globals=template.globals)
        try:
            for chunk in template.root_render_func(frame):
                total += len(chunk)
                if total > MAX_RENDERED_CHARS:
                    raise TemplateLimit(f"rendered template is over {MAX_RENDERED_CHARS:,} characters")
                if not len(parts) & 1023:
                    _tick()
                parts.append(chunk)
        except TemplateLimit:
            raise
        except Exception:
            _env.handle_exception()  # jinja's traceback rewrite: the template's own line numbers
        return "".join(parts)
    finally:
        _deadline.reset(token)


def evaluate(source: str, context: dict[str, Any]) -> Any:
    token = _deadline.set(time.monotonic() + RENDER_SECONDS)
    try:
        return compiled_expression(source)(**context)
    finally:
        _deadline.reset(token)

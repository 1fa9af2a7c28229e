"""Load a YAML or JSON spec into a positioned tree, safely (DESIGN §1).

One code path for both formats: JSON is YAML 1.2, and ruamel's round-trip loader keeps a line and
column on every mapping and sequence. Nothing in a file can construct a Python object: explicit tags
other than the core ones are reported (E102), never executed. Every failure is a `SpecInvalid` with
positioned diagnostics — a bad file never raises anything else.
"""

from __future__ import annotations

import codecs
import contextvars
import datetime
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarstring import LiteralScalarString
from ruamel.yaml.scanner import RoundTripScanner

from ember_compiler.errors import SpecInvalid
from ember_compiler.spec.diagnostics import Diagnostic
from ember_compiler.spec.limits import DEFAULT

MAX_DEPTH = 64  # nesting levels; real specs use < 10
# NOTE: [Parse cost] ruamel's round-trip parser is pure Python (~80 µs per token here, and comments
# cost more as they pile up): past this many `,` `:` `- ` `#` a file would take seconds to parse, so it
# is refused before parsing; and a parse that still runs past PARSE_SECONDS is stopped.
MAX_TOKENS = 20_000
PARSE_SECONDS = 5.0
_parse_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("parse_deadline", default=float("inf"))


class _ParseTimeout(Exception):
    pass
MAX_FLOW_DEPTH = 200  # unclosed brackets, checked on the text before parsing
MAX_NODES = 200_000  # values after alias expansion (a "billion laughs" guard)
_STR_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp")
_CONTAINER_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap")


class _Constructor(RoundTripConstructor):
    """Round-trip constructor where timestamps stay strings (YAML 1.2 core has no timestamps)."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


_COMMENT_END = re.compile("[\n\0\r\x85\u2028\u2029]")


class _Scanner(RoundTripScanner):
    """ruamel's round-trip scanner, but a comment is read in one slice.

    NOTE: [Comment cost] ruamel builds a comment one character at a time (`comment += ch`), which
    took 25 s on one 640 kB comment here (the string is copied when it cannot grow in place). The
    text of a comment has no line break, so the reader can skip it at once: same tokens, same marks.
    """

    def fetch_more_tokens(self) -> Any:
        if time.monotonic() > _parse_deadline.get():
            raise _ParseTimeout
        return super().fetch_more_tokens()

    def scan_to_next_token(self) -> Any:
        reader = self.reader
        white = " \t" if self.flow_level > 0 else " "
        while reader.peek() in white:
            reader.forward()
        if reader.peek() != "#":
            return super().scan_to_next_token()
        start_mark = reader.get_mark()
        buf, start = reader.buffer, reader.pointer
        end = _COMMENT_END.search(buf, start).start()  # the buffer always ends with "\0"
        comment = buf[start:end] + ("\n" if buf[end] == "\0" else "")
        reader.pointer, reader.index, reader.column = end, reader.index + end - start, reader.column + end - start
        ch = self.scan_line_break()
        while ch:
            comment += ch
            ch = self.scan_line_break()
        if not self.flow_level:
            self.allow_simple_key = True
        return comment, start_mark, reader.get_mark()


def _yaml() -> YAML:
    y = YAML(typ="rt", pure=True)
    y.Constructor = _Constructor
    y.Scanner = _Scanner
    y.allow_duplicate_keys = False
    return y


Loc = tuple[Any, ...]


@dataclass
class Document:
    """A loaded spec file: its text and the ruamel tree, with positions for any path of keys."""

    path: Path
    text: str
    data: Any
    # warnings found while checking (errors are raised instead)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    # -- positions ---------------------------------------------------------------------------------
    def _walk(self, loc: Loc) -> tuple[Any, tuple[int, int], tuple[int, int] | None]:
        """(deepest node, 0-based position of its value, of its key) following `loc`."""
        node = self.data
        pos = _own_pos(node) or (0, 0)
        key_pos: tuple[int, int] | None = None
        segs = list(loc)
        i = 0
        while i < len(segs):
            seg = segs[i]
            if isinstance(node, dict) and _has_key(node, seg):
                vpos, kpos = _lc(node, "value", seg), _lc(node, "key", seg)
                node = node[seg]
                pos = vpos or _own_pos(node) or kpos or pos
                key_pos = kpos or pos
            elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
                ipos = _lc(node, "item", seg)
                node = node[seg]
                pos = ipos or _own_pos(node) or pos
                key_pos = pos
            elif isinstance(node, dict) and i + 1 < len(segs) and _has_key(node, segs[i + 1]):
                pass  # a discriminator tag pydantic inserts into loc, e.g. ('nodes', 'a', 'vote', ...)
            else:
                break
            i += 1
        return node, pos, key_pos

    def position(self, loc: Loc) -> tuple[int, int]:
        """1-based (line, col) of the value at `loc`, or of its deepest existing ancestor."""
        _, pos, _ = self._walk(loc)
        return pos[0] + 1, pos[1] + 1

    def key_position(self, loc: Loc) -> tuple[int, int]:
        """1-based (line, col) of the key (or list item) at the end of `loc`."""
        _, pos, key_pos = self._walk(loc)
        p = key_pos or pos
        return p[0] + 1, p[1] + 1

    def string_position(self, loc: Loc, offset: int, needle: str = "") -> tuple[int, int]:
        """Position of character `offset` inside the string value at `loc`.

        Exact for one-line scalars and `|` blocks (checked against the source text by `needle`);
        otherwise the start of the value.
        """
        node, pos, _ = self._walk(loc)
        line0, col0 = pos
        if not isinstance(node, str) or not 0 <= offset <= len(node):
            return line0 + 1, col0 + 1
        line_in = node.count("\n", 0, offset)
        col_in = offset - (node.rfind("\n", 0, offset) + 1)
        lines = self.text.splitlines()
        needle = needle or node[offset : offset + 1]
        if isinstance(node, LiteralScalarString):
            src_line = line0 + 1 + line_in
            if src_line < len(lines):
                body = lines[src_line]
                indent = len(body) - len(body.lstrip(" "))
                if body[indent + col_in :].startswith(needle):
                    return src_line + 1, indent + col_in + 1
        elif line_in == 0 and line0 < len(lines):
            body = lines[line0]
            for start in (col0 + col_in, col0 + 1 + col_in):  # plain, then quoted
                if body[start:].startswith(needle):
                    return line0 + 1, start + 1
        return line0 + 1, col0 + 1

    def line_in_string(self, loc: Loc, lineno: int) -> tuple[int, int]:
        """Position of line `lineno` (1-based) of a multi-line string value, e.g. a template error."""
        node, pos, _ = self._walk(loc)
        if isinstance(node, LiteralScalarString) and lineno >= 1:
            src_line = pos[0] + lineno
            lines = self.text.splitlines()
            if src_line < len(lines):
                body = lines[src_line]
                return src_line + 1, len(body) - len(body.lstrip(" ")) + 1
        return pos[0] + 1, pos[1] + 1

    # -- diagnostics -------------------------------------------------------------------------------
    def diag(self, loc: Loc, code: str, message: str, hint: str | None = None, key: bool = False,
             severity: str = "error") -> Diagnostic:
        line, col = self.key_position(loc) if key else self.position(loc)
        return Diagnostic(str(self.path), line, col, code, message, hint, severity)

    def diag_at(self, pos: tuple[int, int], code: str, message: str, hint: str | None = None,
                severity: str = "error") -> Diagnostic:
        return Diagnostic(str(self.path), pos[0], pos[1], code, message, hint, severity)


def _has_key(node: dict, seg: Any) -> bool:
    try:
        return seg in node
    except TypeError:  # unhashable segment
        return False


def _lc(node: Any, kind: str, key: Any) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        line, col = getattr(lc, kind)(key)
    except (KeyError, IndexError, TypeError):  # merged keys and values added by --set have no position
        return None
    return (line, col) if line is not None else None


def _own_pos(node: Any) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None
    return lc.line, lc.col


# -- loading ---------------------------------------------------------------------------------------
def load_document(path: str | Path, text: str | None = None, *, max_bytes: int = DEFAULT.spec_bytes) -> Document:
    """Load `path` (or `text`, reported as `path`) into a `Document`.

    Only a regular file of at most `max_bytes` is read (a FIFO, device or socket is refused without
    blocking on it).

    Raises:
        SpecInvalid: unreadable file, not a regular file, too large, bad encoding, syntax error,
            duplicate key, unsafe tag, empty document, or a top level that is not a mapping.
    """
    path = Path(path)
    where = str(path)
    if text is None:
        text = _decode(read_spec_bytes(path, max_bytes), where)
    elif len(text) > max_bytes:
        raise SpecInvalid([Diagnostic(where, 1, 1, "E104", _too_large(len(text), max_bytes))])
    tokens = _token_overflow(text)
    if tokens is not None:
        line, col = _offset_to_pos(text, tokens)
        raise SpecInvalid([Diagnostic(where, line, col, "E103", f"document has more than {MAX_TOKENS} values: "
                                                                "too large to check safely")])
    if text.startswith("\ufeff"):
        text = text[1:]
    source = _untab_json(text) if path.suffix.lower() == ".json" else text
    deep = _bracket_overflow(source)
    if deep is not None:  # the parser is recursive and slow on this; refuse early
        line, col = _offset_to_pos(source, deep)
        raise SpecInvalid([Diagnostic(where, line, col, "E103", f"value is nested more than {MAX_FLOW_DEPTH} levels deep")])
    deadline = _parse_deadline.set(time.monotonic() + PARSE_SECONDS)
    try:
        data = _yaml().load(source)
    except _ParseTimeout:
        raise SpecInvalid([Diagnostic(where, 1, 1, "E103", f"document took more than {PARSE_SECONDS:g} s to parse: "
                                                           "too large to check safely")]) from None
    except ReaderError as e:
        line, col = _offset_to_pos(source, e.position)
        raise SpecInvalid([Diagnostic(where, line, col, "E100", f"syntax error: {_reader_problem(e)}")]) from None
    except MarkedYAMLError as e:
        raise SpecInvalid([_marked(where, source, e)]) from None
    except YAMLError as e:
        raise SpecInvalid([Diagnostic(where, 1, 1, "E100", f"syntax error: {e}")]) from None
    except RecursionError:
        raise SpecInvalid([Diagnostic(where, 1, 1, "E100", "syntax error: document is nested too deeply")]) from None
    finally:
        _parse_deadline.reset(deadline)
    doc = Document(path=path, text=text, data=data)
    if data is None:
        raise SpecInvalid([Diagnostic(where, 1, 1, "E103", "empty document: expected a mapping with 'ember: 1'")])
    if not isinstance(data, dict):
        line, col = _first_content(text)
        raise SpecInvalid([Diagnostic(where, line, col, "E103",
                                      f"the top level must be a mapping, not {describe(data)}")])
    problems = _Sanitizer(doc).run()
    if problems:
        raise SpecInvalid(problems)
    return doc


def read_spec_bytes(path: Path, max_bytes: int = DEFAULT.spec_bytes) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; anything else is a `SpecInvalid` (E104).

    The file is opened non-blocking and checked with `fstat` on the open descriptor, so a FIFO (or
    `/dev/stdin` on a pipe) is refused instead of blocking, and a file swapped after a check is caught.
    """
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except (OSError, ValueError) as e:
        raise SpecInvalid([Diagnostic(where, 1, 1, "E104", f"cannot read file: {_reason(e)}")]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpecInvalid([Diagnostic(where, 1, 1, "E104", f"not a regular file ({_file_kind(info.st_mode)}): "
                                                               "Ember reads specs only from regular files")])
        if info.st_size > max_bytes:
            raise SpecInvalid([Diagnostic(where, 1, 1, "E104", _too_large(info.st_size, max_bytes))])
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(max_bytes + 1)  # a file that grew since fstat is still cut at the limit
    except OSError as e:
        raise SpecInvalid([Diagnostic(where, 1, 1, "E104", f"cannot read file: {_reason(e)}")]) from None
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        raise SpecInvalid([Diagnostic(where, 1, 1, "E104", _too_large(len(raw), max_bytes))])
    return raw


def _reason(e: Exception) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def _too_large(size: int, max_bytes: int) -> str:
    return f"file is over the limit of {max_bytes:,} bytes ({size:,} read); raise it with --max-spec-bytes"


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO or pipe"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def _token_overflow(text: str) -> int | None:
    """Offset of the separator past MAX_TOKENS (a cheap upper bound on the values in the file)."""
    for i, m in enumerate(_TOKEN.finditer(text)):
        if i >= MAX_TOKENS:
            return m.start()
    return None


_TOKEN = re.compile(r"[,:#]|^[ \t]*-[ \t]", re.M)


def _decode(raw: bytes, where: str) -> str:
    try:
        return codecs.decode(raw, "utf-8-sig")
    except UnicodeDecodeError as e:
        good = raw[: e.start].decode("utf-8", errors="replace")
        line, col = _offset_to_pos(good, len(good))
        raise SpecInvalid([Diagnostic(where, line, col, "E100",
                                      f"file is not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})")]) from None


def _untab_json(text: str) -> str:
    # JSON allows tab indentation, YAML does not; a tab outside strings is whitespace, so a space keeps columns.
    return re.sub(r"(?m)^[ \t]+", lambda m: " " * len(m.group()), text)


def _bracket_overflow(text: str) -> int | None:
    """Offset where more than MAX_FLOW_DEPTH brackets are open (quotes ignored: a cheap upper bound)."""
    depth = 0
    for m in re.finditer(r"[\[\]{}]", text):
        depth += 1 if m.group() in "[{" else -1
        if depth > MAX_FLOW_DEPTH:
            return m.start()
        depth = max(depth, 0)
    return None


def _offset_to_pos(text: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset)
    return line + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _first_content(text: str) -> tuple[int, int]:
    for i, ln in enumerate(text.splitlines()):
        s = ln.strip()
        if s and not s.startswith(("#", "---", "%")):
            return i + 1, len(ln) - len(ln.lstrip()) + 1
    return 1, 1


def _reader_problem(e: ReaderError) -> str:
    ch = e.character
    code = ord(ch) if isinstance(ch, str) else ch
    return f"unacceptable character #x{code:04x} (control or binary data)" if code is not None else str(e)


def _first_key_line(text: str, name: str, start: Any, dup: Any) -> int | None:
    """Line of the first `name:` at the duplicate's column, between the mapping start and it."""
    lines = text.splitlines()
    first = start.line if start is not None else 0
    for i in range(first, min(dup.line, len(lines))):
        rest = lines[i][dup.column:]
        if re.match(rf"""["']?{re.escape(name)}["']?\s*:""", rest) and not lines[i][: dup.column].strip(" {,"):
            return i + 1
    return None


def _marked(where: str, text: str, e: MarkedYAMLError) -> Diagnostic:
    mark = e.problem_mark or e.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if isinstance(e, DuplicateKeyError):
        m = re.search(r'duplicate key "(.*?)"', e.problem or "")
        name = m.group(1) if m else "?"
        first = _first_key_line(text, name, e.context_mark, mark) if mark is not None else None
        return Diagnostic(where, line, col, "E101",
                          f"duplicate key '{name}'" + (f" (first defined on line {first})" if first else ""))
    problem = (e.problem or str(e)).strip()
    context = f"; {e.context.strip()} started at {e.context_mark.line + 1}:{e.context_mark.column + 1}" \
        if e.context and e.context_mark else ""
    if "undefined alias" in problem or "single document" in (e.context or ""):
        context = ""
    hint = None
    if mark is not None and "${" in (text.splitlines()[mark.line:mark.line + 1] or [""])[0] and "flow" in (e.context or ""):
        hint = 'inside [...] or {...}, quote references: "${node.port}"'
    return Diagnostic(where, line, col, "E100", f"syntax error: {problem}{context}", hint)


class _Sanitizer:
    """Reject unsafe or non-JSON values in place; normalizes `!!str` scalars to plain strings."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Diagnostic] = []
        self.sizes: dict[int, int] = {}
        self.active: set[int] = set()

    def run(self) -> list[Diagnostic]:
        total = self._visit(self.doc.data, None, None, 0)
        if total >= MAX_NODES and not self.problems:
            self.problems.append(self.doc.diag_at((1, 1), "E103", f"document has more than {MAX_NODES} values after alias expansion"))
        return self.problems

    def _error(self, parent: Any, key: Any, code: str, message: str, as_key: bool = False) -> None:
        kind = "item" if isinstance(parent, list) else ("key" if as_key else "value")
        pos = (_lc(parent, kind, key) if parent is not None else None) or _own_pos(parent) or (0, 0)
        self.problems.append(self.doc.diag_at((pos[0] + 1, pos[1] + 1), code, message))

    def _visit(self, node: Any, parent: Any, key: Any, depth: int) -> int:
        if isinstance(node, dict | list):
            return self._container(node, parent, key, depth)
        if isinstance(node, TaggedScalar):
            tag = str(node.tag.value if hasattr(node.tag, "value") else node.tag)
            if tag in _STR_TAGS:
                parent[key] = str(node.value)
            else:
                self._error(parent, key, "E102", f"unsupported tag '{_short_tag(tag)}': specs hold plain data only")
        elif isinstance(node, datetime.date):
            parent[key] = node.isoformat()
        elif isinstance(node, str) and _SURROGATE.search(node):
            fixed = _join_surrogates(node)
            if fixed is None:
                self._error(parent, key, "E100", "invalid \\u escape: a lone UTF-16 surrogate")
            else:
                parent[key] = fixed if type(node) is str else type(node)(fixed)
        elif not isinstance(node, str | int | float | bool | type(None)):
            what = {"bytes": "!!binary", "CommentedSet": "!!set"}.get(type(node).__name__, type(node).__name__)
            self._error(parent, key, "E102", f"unsupported YAML value ({what}): specs hold plain data only")
        return 1

    def _container(self, node: Any, parent: Any, key: Any, depth: int) -> int:
        ident = id(node)
        if ident in self.active:
            self._error(parent, key, "E103", "recursive alias: a value contains itself")
            return MAX_NODES
        if ident in self.sizes:
            return self.sizes[ident]
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag is not None and str(tag) not in _CONTAINER_TAGS:
            self._error(parent, key, "E102", f"unsupported tag '{_short_tag(tag)}': specs hold plain data only")
        if depth > MAX_DEPTH:
            self._error(parent, key, "E103", f"value is nested more than {MAX_DEPTH} levels deep")
            return MAX_NODES
        self.active.add(ident)
        size = 1
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for k, v in items:
            if isinstance(node, dict) and not isinstance(k, str):
                self._error(node, k, "E112", f"mapping keys must be strings, not {describe(k)}", as_key=True)
            elif isinstance(k, str) and _SURROGATE.search(k):
                self._error(node, k, "E100", "invalid \\u escape in a key (UTF-16 surrogate)", as_key=True)
            size += self._visit(v, node, k, depth + 1)
            if size >= MAX_NODES:
                break
        self.active.discard(ident)
        self.sizes[ident] = size
        return size


_SURROGATE = re.compile("[\ud800-\udfff]")


def _join_surrogates(text: str) -> str | None:
    """JSON writes non-BMP characters as `\\ud83d\\ude00` pairs; YAML leaves them apart: join them."""
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return None


def _short_tag(tag: Any) -> str:
    tag = str(tag)
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def to_plain(node: Any) -> Any:
    """A copy of the tree as plain JSON types (dict, list, str, int, float, bool, None)."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [to_plain(v) for v in node]
    if isinstance(node, bool | ScalarBoolean):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def describe(value: Any) -> str:
    """A short human description of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool | ScalarBoolean):
        return f"boolean {str(bool(value)).lower()}"
    if isinstance(value, int | float):
        return f"{'integer' if isinstance(value, int) else 'number'} {value!r}"
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        return f"string {short!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


__all__ = ["Document", "describe", "load_document", "to_plain"]


def subspec_path(doc: Document, spec_field: str) -> Path:
    """Where a `network` (or `map`) node's `spec:` points: relative to the including file."""
    target = Path(spec_field).expanduser()
    return target if target.is_absolute() else Path(os.path.normpath(doc.path.parent / target))

"""The docs cannot drift: every command they show runs, generated tables are current, links resolve.

Which blocks run (README.md, docs/*.md, bench/README.md):

- ```` ```console ````: every line starting with `$ ` is a command (a trailing `\\` continues it);
  the other lines are its output, checked only when the block is marked `output` (below).
- ```` ```sh ```` / ```` ```bash ````: the block runs as one bash script with `set -e -o pipefail`.
- ```` ```python ````: runs only when marked `run` (most Python snippets are fragments).

An HTML comment on the line(s) just above the fence changes that:

    <!-- docs-check: skip (needs an OpenAI key) -->   never run; the reason is required and is listed
                                                      in pytest's summary of skipped tests
    <!-- docs-check: e2e -->                          needs the local llama.cpp model: `e2e` marker
    <!-- docs-check: exit 1 -->                       every command in the block must exit 1
    <!-- docs-check: output -->                       each output line shown must appear, in order
                                                      (`…` matches anything, runs of spaces any spaces)
    <!-- docs-check: run -->                          run this python block
    <!-- docs-check: same-as specs/x.yaml -->         the block (any language) is that file, verbatim

Blocks of one file run in order in one temporary copy of the repository (so a later block may use a
file an earlier one wrote), with this interpreter's bin directory (the venv's) first on PATH and the
response cache in the copy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())  # wherever tests/ nests
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
SHELLS = ("console", "sh", "bash")
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-check:\s*(.*?)\s*-->\s*$")
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", ".ember", "__pycache__", "*.egg-info", ".pytest_cache",
                                     ".ruff_cache", ".hypothesis", "build", "dist", "*.sqlite3*")
TIMEOUT_S = 300


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None = None
    e2e: bool = False
    exit_code: int = 0
    check_output: bool = False
    run: bool = False
    same_as: str | None = None  # the block shows this file (relative to the repository), verbatim
    directives: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in SHELLS or (self.lang == "python" and self.run)


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)


def _apply(block: Block, directive: str) -> None:
    if m := re.fullmatch(r"skip\s*\((.+)\)", directive):
        block.skip = m.group(1).strip()
    elif directive == "e2e":
        block.e2e = True
    elif m := re.fullmatch(r"exit\s+(\d+)", directive):
        block.exit_code = int(m.group(1))
    elif directive == "output":
        block.check_output = True
    elif directive == "run":
        block.run = True
    elif m := re.fullmatch(r"same-as\s+(\S+)", directive):
        block.same_as = m.group(1)
    else:
        raise ValueError(f"{block.where}: unknown docs-check directive {directive!r} "
                         "(skip (REASON), e2e, exit N, output, run, same-as PATH)")


def _unfenced(text: str) -> list[str]:
    """The lines outside fenced blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if fenced:
            fenced = line.strip() != "```"
        elif line.lstrip().startswith("```"):
            fenced = True
        else:
            out.append(line)
    return out


def parse_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        directives = []
        j = i - 1
        while j >= 0 and (d := DIRECTIVE.match(lines[j])):
            directives.insert(0, d.group(1))
            j -= 1
        indent, lang = m.group(1), m.group(2)
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = [line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:end]]
        block = Block(path, i + 1, lang, "\n".join(body) + "\n", directives=directives)
        for directive in directives:
            _apply(block, directive)
        if any(not d.startswith("same-as") for d in directives) and block.lang not in (*SHELLS, "python"):
            raise ValueError(f"{block.where}: a docs-check directive on a ```{lang} block, which never runs")
        blocks.append(block)
        i = end + 1
    attached = sum(len(b.directives) for b in blocks)
    if attached != sum(1 for line in _unfenced("\n".join(lines)) if DIRECTIVE.match(line)):
        raise ValueError(f"{path}: a docs-check comment that is not on the line(s) just above a fenced block")
    return blocks


def console_commands(text: str) -> list[Command]:
    commands: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            parts = [line[2:]]
            while parts[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                parts.append(lines[i])
            commands.append(Command("\n".join(parts)))
        elif commands and line.strip():
            commands[-1].expected.append(line)
        i += 1
    return commands


ALL_BLOCKS = [b for path in DOCS if path.exists() for b in parse_blocks(path)]
RUNNABLE = [b for b in ALL_BLOCKS if b.runnable]


def _param(block: Block):
    marks = []
    if block.skip:
        marks.append(pytest.mark.skip(reason=f"docs-check skip at {block.where}: {block.skip}"))
    if block.e2e:
        marks.append(pytest.mark.e2e)
    return pytest.param(block, id=block.where, marks=marks)


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    """One copy of the repository per doc file, made on first use."""
    made: dict[Path, Path] = {}

    def get(doc: Path) -> Path:
        if doc not in made:
            dest = tmp_path_factory.mktemp("docs") / "repo"
            shutil.copytree(ROOT, dest, ignore=COPY_IGNORE)
            made[doc] = dest
        return made[doc]

    return get


def _env(workspace: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CACHE_HOME"] = str(workspace / ".cache")
    env["TERM"] = "dumb"
    env["COLUMNS"] = "120"
    env.pop("VIRTUAL_ENV", None)
    return env


def _run(argv: list[str], workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=workspace, env=_env(workspace), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT_S)


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [r"\s+" if p.isspace() else re.escape(p).replace("…", ".*") for p in re.split(r"(\s+)", expected.strip())]
    return re.compile("".join(parts))


def _check_output(block: Block, command: Command, output: str) -> None:
    actual = [line.strip() for line in output.splitlines()]
    at = 0
    for want in command.expected:
        pattern = _pattern(want)
        while at < len(actual) and not pattern.fullmatch(actual[at]):
            at += 1
        if at == len(actual):
            pytest.fail(f"{block.where}: `{command.text}` did not print {want!r} (in this order)\n"
                        f"--- it printed (end):\n{output[-3000:]}", pytrace=False)
        at += 1


@pytest.mark.parametrize("block", [_param(b) for b in RUNNABLE])
def test_doc_block_runs(block: Block, workspaces) -> None:
    workspace = workspaces(block.path)
    if block.lang == "python":
        script = workspace / f".docs-block-{block.line}.py"
        script.write_text(block.text, encoding="utf-8")
        runs = [(Command(block.text), _run([sys.executable, str(script)], workspace))]
    elif block.lang == "console":
        commands = console_commands(block.text)
        assert commands, f"{block.where}: a ```console block with no `$ ` command"
        runs = [(c, _run(["bash", "-o", "pipefail", "-c", c.text], workspace)) for c in commands]
    else:
        runs = [(Command(block.text), _run(["bash", "-e", "-o", "pipefail", "-c", block.text], workspace))]
    for command, proc in runs:
        output = proc.stdout + proc.stderr
        if proc.returncode != block.exit_code:
            pytest.fail(f"{block.where}: `{command.text.strip()}` exited {proc.returncode}, expected "
                        f"{block.exit_code}\n--- output (end):\n{output[-3000:]}", pytrace=False)
        if block.check_output:
            _check_output(block, command, output)


@pytest.mark.parametrize("block", [pytest.param(b, id=b.where) for b in ALL_BLOCKS if b.same_as])
def test_doc_block_shows_its_file(block: Block) -> None:
    assert block.text == (ROOT / block.same_as).read_text(encoding="utf-8"), (
        f"{block.where} no longer shows {block.same_as} as it is: copy the file into the block")


def test_blocks_are_found() -> None:
    """A parser that finds nothing would pass every test above: the README alone shows several."""
    readme = [b for b in RUNNABLE if b.path.name == "README.md" and b.path.parent == ROOT]
    assert len([b for b in readme if not b.skip]) >= 3
    assert any(b.lang == "console" for b in RUNNABLE) and any(b.lang in ("sh", "bash") for b in RUNNABLE)


def test_console_parsing() -> None:
    commands = console_commands("$ ember run a.yaml \\\n    --json\n{\"x\": 1}\n\n$ ember schema\n")
    assert [c.text for c in commands] == ["ember run a.yaml \\\n    --json", "ember schema"]
    assert commands[0].expected == ['{"x": 1}'] and commands[1].expected == []
    assert _pattern("5 calls · … · 0.00s").fullmatch("5 calls · 6 tokens in / 35 out · $0.0000 ·  0.00s")
    assert not _pattern("answer: 42").fullmatch("answer: 41")


def test_directives_parse(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("<!-- docs-check: skip (needs a key) -->\n```sh\nfalse\n```\n\n"
                   "<!-- docs-check: exit 1 -->\n<!-- docs-check: output -->\n```console\n$ false\n```\n"
                   "```yaml\na: 1\n```\n")
    skip, fail, yaml = parse_blocks(doc)
    assert (skip.skip, skip.runnable, skip.line) == ("needs a key", True, 2)
    assert (fail.exit_code, fail.check_output, fail.skip) == (1, True, None)
    assert not yaml.runnable
    doc.write_text("<!-- docs-check: skip -->\n```sh\ntrue\n```\n")  # a skip without a reason
    with pytest.raises(ValueError, match="unknown docs-check directive"):
        parse_blocks(doc)
    doc.write_text("<!-- docs-check: skip (x) -->\n\n```sh\ntrue\n```\n")  # not next to its block
    with pytest.raises(ValueError, match="not on the line"):
        parse_blocks(doc)


# -- generated regions --------------------------------------------------------------------------------
def test_generated_docs_are_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_generate_check_finds_a_stale_region(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("*.png", "__pycache__"))
    page = docs / "diagnostics.md"
    page.write_text(page.read_text().replace("`E201` |", "`E201` | (edited by hand)"), encoding="utf-8")
    check = [sys.executable, str(docs / "generate.py"), "--check"]
    proc = subprocess.run(check, capture_output=True, text=True)
    assert proc.returncode == 1 and "docs/diagnostics.md (codes)" in proc.stderr
    subprocess.run([sys.executable, str(docs / "generate.py")], check=True, capture_output=True)
    assert "(edited by hand)" not in page.read_text()
    assert subprocess.run(check, capture_output=True).returncode == 0


def test_generated_tables_cover_every_op_and_code() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import generate
    finally:
        sys.path.remove(str(ROOT / "docs"))
    from ember_compiler.ops.registry import OPS

    ops_text = (ROOT / "docs" / "spec-format.md").read_text()
    for name in OPS:
        assert f"| `{name}` |" in ops_text
    codes_text = (ROOT / "docs" / "diagnostics.md").read_text()
    codes = [row["code"] for row in generate.code_rows()]
    assert {"E100", "E201", "E312", "W201", "E999"} <= set(codes)
    for code in codes:
        assert f"`{code}`" in codes_text


# -- links --------------------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def _prose(text: str) -> str:
    """The text outside fenced blocks and inline code."""
    return "\n".join(re.sub(r"`[^`]*`", "", line) for line in _unfenced(text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set(ANCHOR.findall(path.read_text(encoding="utf-8")))
    for line in _unfenced(path.read_text(encoding="utf-8")):
        if m := HEADING.match(line):
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_slugs() -> None:
    assert slug("The `sim` provider") == "the-sim-provider"
    assert slug("Inference-time scaling: more calls can hurt") == "inference-time-scaling-more-calls-can-hurt"
    assert slug("References, templates, params, `when:`") == "references-templates-params-when"


@pytest.mark.parametrize("doc", [pytest.param(p, id=str(p.relative_to(ROOT))) for p in DOCS if p.exists()])
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(doc.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading or anchor '#{anchor}' in {dest.relative_to(ROOT)})")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: {broken}"

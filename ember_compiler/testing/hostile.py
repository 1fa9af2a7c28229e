"""Hostile spec files for fuzzing `ember validate` (issue #17): each `write_hostile(folder, seed)` call
writes a few files that attack the loader, the checker or the template sandbox, plus random byte-level
mutations of the example specs. The same seed writes the same files.

`run_validate(paths, memory_mb, timeout_s)` runs the real `ember validate --format json` in a
subprocess under an address-space limit and a timeout and returns what it printed.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "specs").rglob("*.yaml"))

_HEAD = "ember: 1\nname: hostile\ninputs: {question: string}\nmodels: {w: {provider: sim}}\n"


def _network(spec: str) -> str:
    return _HEAD + f'nodes:\n  a: {{op: network, spec: "{spec}"}}\noutputs: {{x: "${{a.answer}}"}}\n'


def _prompt(template: str) -> str:
    return _HEAD + "nodes:\n  g:\n    op: generate\n    model: w\n    prompt: |\n      " + template + \
        '\noutputs: {x: "${g.answer}"}\n'


def _attacks(rng: random.Random) -> dict[str, str | bytes]:
    """Hand-written shapes of the attacks in the issue, sized by `rng`."""
    k = rng.randint(20, 40)
    laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n"
        for i in range(1, 10))
    return {
        "huge_n.yaml": _HEAD + f"nodes:\n  s: {{op: ensemble, model: w, n: {10 ** rng.randint(9, 18)}, prompt: hi}}\n"
                               "outputs: {x: '${s.responses}'}\n",
        "huge_rounds.yaml": _HEAD + "nodes:\n  r: {op: refine, prover: w, verifier: w, question: q, "
                                    f"max_rounds: {10 ** rng.randint(8, 12)}}}\noutputs: {{x: '${{r.answer}}'}}\n",
        "deep_flow.yaml": "ember: 1\nx: " + "[" * rng.randint(300, 5000) + "\n",
        "deep_block.yaml": "ember: 1\n" + "".join("  " * i + f"k{i}:\n" for i in range(k * 5)),
        "laughs.yaml": "ember: 1\n" + laughs,
        "long_list.yaml": "ember: 1\nx: [" + ",".join(["1"] * rng.randint(30_000, 300_000)) + "]\n",
        "comments.yaml": "ember: 1\n" + "# c\n" * rng.randint(30_000, 100_000),
        "long_comment.yaml": "ember: 1\nname: c # " + "x" * rng.randint(500_000, 1_900_000) + "\n",
        "tags.yaml": "ember: 1\nx: !!python/object/apply:os.system ['echo pwned']\ny: !!binary aGk=\nz: !custom 1\n",
        "binary.yaml": bytes(rng.randrange(256) for _ in range(4096)),
        "not_utf8.yaml": b"ember: 1\nname: \xff\xfe\xfd\n",
        "templates.yaml": _prompt("{{ 9**999999999 }} {{ 'a'*10**9 }} {{ (['a'*10**6]*10000)|join }} "
                                  "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
        "bad_template.yaml": _prompt("{% for %}{{ ((((( }}"),
        "env_file.yaml": _network("~/.env"),
        "passwd.yaml": _network("/etc/passwd"),
        "zero.yaml": _network("/dev/zero"),
        "self.yaml": _network("self.yaml"),
        "loop.yaml": _network("loop_a.yaml"),
        "big_map.yaml": _HEAD + "nodes:\n  m: {op: map, over: [" + ",".join(["1"] * rng.randint(2_000, 5_000)) + "], "
                                "node: {op: generate, model: w, prompt: hi}}\noutputs: {x: '${m.answers}'}\n",
        "many_nodes.yaml": _HEAD + "nodes:\n" + "".join(f"  n{i}: {{op: first, candidates: [x]}}\n"
                                                        for i in range(rng.randint(2_000, 30_000))),
        "keys.yaml": "ember: 1\n" + "".join(f"? [{i}, {i}]\n: v\n" for i in range(50)),
        "surrogates.json": '{"ember": 1, "name": "\\ud800\\udfff\\ud800"}',
    }


def write_hostile(folder: Path, seed: int, mutations: int = 12) -> list[Path]:
    """Write the attack files and `mutations` random mutations of the example specs into `folder`."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, body in _attacks(rng).items():
        path = folder / name
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
        paths.append(path)
    for a, b in (("loop_a.yaml", "loop_b.yaml"), ("loop_b.yaml", "loop_a.yaml")):
        if not (folder / a).is_symlink():
            (folder / a).symlink_to(folder / b)
    fifo = folder / "fifo.yaml"
    if not fifo.exists():
        os.mkfifo(fifo)
    paths.append(fifo)
    for i in range(mutations):
        source = bytearray(rng.choice(EXAMPLES).read_bytes())
        for _ in range(rng.randint(1, 8)):
            op = rng.randrange(4)
            at = rng.randrange(len(source) + 1)
            if op == 0 and source:
                source[at % len(source)] = rng.randrange(256)
            elif op == 1:
                source[at:at] = rng.choice([b"[", b"{", b"&a ", b"*a", b"!!", b"${", b"{{", b"\t", b"\x00", b"\n-"])
            elif op == 2:
                del source[at:at + rng.randint(1, 40)]
            else:
                chunk = source[at:at + rng.randint(1, 200)]
                source[at:at] = bytes(chunk) * rng.randint(2, 50)
        path = folder / f"mutant{i}.yaml"
        path.write_bytes(bytes(source))
        paths.append(path)
    return paths


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def run_validate(paths: list[Path], *, memory_mb: int = 1024, timeout_s: float = 10.0,
                 cwd: Path | None = None) -> Outcome:
    """`ember validate --format json PATHS` in a subprocess limited to `memory_mb` of address space.

    Raises:
        subprocess.TimeoutExpired: it ran past `timeout_s` (the process is killed).
    """
    limit = memory_mb * 1024 * 1024

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "ember_cli.main", "validate", "--format", "json",
                           *map(str, paths)], capture_output=True, text=True, timeout=timeout_s,
                          preexec_fn=limit_memory, env=env, cwd=cwd)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def diagnostics(outcome: Outcome) -> list[dict]:
    """The JSON diagnostics an outcome printed."""
    return json.loads(outcome.stdout or "[]")

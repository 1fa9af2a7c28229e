"""The ``sandbox`` provider: runs a candidate program against its tests in a separate, locked-in process.

``execute`` nodes send it one request per candidate (role ``execute``; ``meta`` carries the
``program``, its ``tests`` and the node's ``limits``); its reply is one JSON text, the result. On the
sim the same requests get the ``execute`` sampler (passed with ``tpr`` when correct, ``fpr`` when wrong).

Each run, never inside Ember's process:

- a fresh temporary directory: the program's working directory, removed afterwards;
- ``python -I`` (isolated: no ``PYTHON*`` variables, no user site) started with an empty environment
  but ``PATH`` and ``HOME`` (the temp dir), so no secret reaches the candidate;
- no network where the machine allows it: ``unshare -rn`` (a user and a network namespace) when it
  works here, checked once; else the child's audit hook alone refuses sockets, and the result says so
  (``network: "hook"`` instead of ``"namespace"``);
- limits set by the child on itself before the program runs (``sandbox_child.py``): CPU seconds,
  address space, file size (its output), no new processes, few files; an audit hook refusing paths
  outside its directory, sockets, processes and ctypes;
- a wall-clock limit here: past ``timeout_s`` the whole process group is killed.

A killed child is a result, not an error: ``error`` names the limit (``cpu limit``, ``output limit``,
``time limit``, ``killed by signal N``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .base import Completion, Request

CHILD = Path(__file__).with_name("sandbox_child.py")
DEFAULT_LIMITS = {"timeout_s": 10.0, "cpu_s": 5, "memory_mb": 512, "output_kb": 256}
_SIGNALS = {signal.SIGXCPU: "cpu limit", signal.SIGXFSZ: "output limit", signal.SIGKILL: "killed"}
_NAMESPACE: list[bool] = []  # whether `unshare -rn` works on this machine (checked once per process)


def network_namespace() -> bool:
    """Whether the child can be put in its own (empty) network namespace here."""
    if not _NAMESPACE:
        unshare = shutil.which("unshare")
        ok = False
        if unshare:
            try:
                ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
        _NAMESPACE.append(ok)
    return _NAMESPACE[0]


def limits_of(given: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULT_LIMITS, **{k: v for k, v in (given or {}).items() if v is not None}}


async def run_program(program: str, tests: list[str], limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``program`` then each test (Python source) in a sandbox; the result as a dict.

    Returns ``passed`` (every test ran without error, and there was at least one), ``tests`` (per
    test ``ok`` and ``error``), ``error`` (the program's, or the limit that stopped it), ``blocked``
    (refused operations), ``network`` (``namespace`` or ``hook``) and ``output`` (its first 2 kB).
    """
    lim = limits_of(limits)
    root = Path(tempfile.mkdtemp(prefix="ember-sandbox-"))
    try:
        work = root / "work"
        work.mkdir()
        (work / "program.py").write_text(program, encoding="utf-8")
        (root / "tests.json").write_text(json.dumps(list(tests)), encoding="utf-8")
        isolated = network_namespace()
        cmd = [sys.executable, "-I", str(CHILD), str(root), json.dumps(lim)]
        if isolated:
            cmd = [shutil.which("unshare") or "unshare", "-rn", *cmd]
        env = {"PATH": os.defpath, "HOME": str(work), "LANG": "C.UTF-8"}
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                    start_new_session=True)
        timed_out = False
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), float(lim["timeout_s"]))
        except TimeoutError:
            timed_out = True
            stderr = b""
        finally:
            if proc.returncode is None or timed_out:
                _kill_group(proc.pid)
                await proc.wait()
        return _result(root, work, proc.returncode, timed_out, stderr, "namespace" if isolated else "hook")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return


def _result(root: Path, work: Path, code: int | None, timed_out: bool, stderr: bytes, network: str) -> dict[str, Any]:
    try:
        output = (work / "output.txt").read_bytes()[:2048].decode("utf-8", "replace")
    except OSError:
        output = ""
    found: dict[str, Any] = {}
    try:
        found = json.loads((root / "result.json").read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        found = {}
    tests = found.get("tests") or []
    error = found.get("error")
    if timed_out:
        error = "time limit"
    elif code is not None and code < 0:
        error = _SIGNALS.get(-code, f"killed by signal {-code}")
    elif code:
        error = error or (stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {code}"])[-1][:500]
    if error is None and not found:
        error = "no result: the program ended the interpreter before its tests ran"
    passed = bool(tests) and error is None and all(t.get("ok") for t in tests)
    return {"passed": passed, "tests": tests, "error": error, "blocked": found.get("blocked") or [],
            "network": network, "output": output}


class SandboxProvider:
    """Runs ``execute`` requests (see the module docstring); free, and one process per call in flight."""

    name = "sandbox"
    supports_n = False
    timeout_s = None  # each run has its own wall-clock limit (the node's timeout_s)
    per_process = True

    def default_concurrency(self, binding: dict[str, Any]) -> int:
        return max(1, os.cpu_count() or 1)

    async def aclose(self) -> None:
        return None

    async def complete(self, request: Request) -> Completion:
        meta = request.meta
        result = await run_program(str(meta.get("program") or ""), list(meta.get("tests") or []),
                                   meta.get("limits"))
        return Completion(texts=[json.dumps(result)], model="sandbox", finish_reasons=["stop"])

"""The sandbox's child side: run with ``python -I sandbox_child.py ROOT LIMITS_JSON``, never imported by Ember.

It reads ``ROOT/work/program.py`` and ``ROOT/tests.json``, opens its result file, then locks itself in
before any candidate code runs: rlimits (CPU seconds, address space, file size — which bounds its
output —, no new processes, few open files, no core dumps) and an audit hook that refuses, and records,
opening or listing paths outside its work directory (Python's own library stays readable), sockets,
new processes and native code loading (ctypes). It then runs the program and each test in one
namespace and writes one JSON result: per test ``ok`` and ``error``, the program's ``error``, and the
``blocked`` events. Only the standard library is used: the child must not import Ember.

The parent (``sandbox.py``) adds the wall-clock limit, the network namespace and the verdict on a
child that was killed. The hook guards the machine and Ember from a candidate; a program written to
cheat its own verdict from inside the interpreter is out of its scope.
"""

import errno
import json
import os
import resource
import sys

_PATH_EVENTS = {"open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.rmdir", "os.mkdir",
                "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.rmtree"}
_DENIED = ("socket.", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
           "subprocess.Popen", "os.startfile", "ctypes.", "os.kill", "os.killpg", "signal.pthread_kill",
           "_posixsubprocess")
# modules that reach the system around the hook (fork_exec, native calls): not importable at all
_NO_IMPORT = {"_posixsubprocess", "ctypes", "_ctypes", "multiprocessing", "_multiprocessing"}


def _limits(cfg: dict) -> None:
    cpu = int(cfg["cpu_s"])
    memory = int(cfg["memory_mb"]) * 1024 * 1024
    size = int(cfg["output_kb"]) * 1024
    for which, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (memory, memory)),
                         (resource.RLIMIT_FSIZE, (size, size)), (resource.RLIMIT_CORE, (0, 0)),
                         (resource.RLIMIT_NOFILE, (64, 64)), (resource.RLIMIT_NPROC, (0, 0))):
        resource.setrlimit(which, value)


def _writes(event: str, args: tuple) -> bool:
    if event != "open":
        return event not in ("os.listdir", "os.scandir")
    mode, flags = (list(args[1:3]) + [None, None])[:2]
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC))


def _guard(work: str, blocked: list) -> None:
    # what imports read: the standard library and site-packages (sys.path), read-only
    readable = tuple(os.path.realpath(p) + os.sep for p in sys.path)
    inside = os.path.realpath(work) + os.sep

    def refuse(event: str, detail: str) -> None:
        if len(blocked) < 20:
            blocked.append(f"{event} {detail}".strip())
        raise PermissionError(f"sandbox: {event} is not allowed" + (f" ({detail})" if detail else ""))

    def hook(event: str, args: tuple) -> None:
        if event.startswith(_DENIED):
            refuse(event, "")
        if event == "import" and args and str(args[0]).partition(".")[0] in _NO_IMPORT:
            refuse("import", str(args[0]))
        if event in _PATH_EVENTS and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            real = os.path.realpath(os.path.join(work, path)) + os.sep
            if real.startswith(inside):
                return
            if _writes(event, args) or not real.startswith(readable):
                refuse(event, path)

    sys.addaudithook(hook)


def _error(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "memory limit"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "output limit"
    return f"{type(exc).__name__}: {exc}"[:500]


def main() -> None:
    root, cfg = sys.argv[1], json.loads(sys.argv[2])
    work = os.path.join(root, "work")
    with open(os.path.join(work, "program.py"), encoding="utf-8") as f:
        source = f.read()
    with open(os.path.join(root, "tests.json"), encoding="utf-8") as f:
        tests = json.load(f)
    result = open(os.path.join(root, "result.json"), "w", encoding="utf-8")  # noqa: SIM115 - written last
    out = os.open(os.path.join(work, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.chdir(work)
    sys.path[:] = [p for p in sys.path if p and os.path.isdir(p)]
    blocked: list = []
    _limits(cfg)
    _guard(work, blocked)
    space: dict = {"__name__": "__main__"}
    program_error = None
    try:
        exec(compile(source, "program.py", "exec"), space)  # noqa: S102 - inside the sandbox
    except BaseException as exc:  # noqa: BLE001 - a candidate's failure is its result
        program_error = _error(exc)
    outcomes = []
    for test in tests:
        if program_error is not None:
            outcomes.append({"ok": False, "error": "the program failed"})
            continue
        try:
            exec(compile(test, "test.py", "exec"), space)  # noqa: S102 - inside the sandbox
            outcomes.append({"ok": True, "error": None})
        except BaseException as exc:  # noqa: BLE001 - a failing test is a result
            outcomes.append({"ok": False, "error": _error(exc)})
    json.dump({"tests": outcomes, "error": program_error, "blocked": blocked}, result)
    result.close()


if __name__ == "__main__":
    main()

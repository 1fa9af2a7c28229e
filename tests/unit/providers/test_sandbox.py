"""The sandbox runs candidate programs in a separate, locked-in process: hostile ones are stopped and
reported, and Ember (this process) carries on."""

from __future__ import annotations

import asyncio
import os

import pytest

from ember_compiler.providers.sandbox import network_namespace, run_program

LIMITS = {"cpu_s": 1, "timeout_s": 20, "memory_mb": 256, "output_kb": 64}


def run(program: str, tests: list[str] | None = None) -> dict:
    return asyncio.run(run_program(program, ["assert True"] if tests is None else tests, LIMITS))


def test_a_correct_program_passes_and_a_wrong_one_fails_per_test():
    good = run("def add(a, b):\n    return a + b\n", ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"])
    assert good["passed"] and [t["ok"] for t in good["tests"]] == [True, True] and good["error"] is None
    bad = run("def add(a, b):\n    return a - b\n", ["assert add(1, 2) == 3", "assert add(1, 0) == 1"])
    assert not bad["passed"] and [t["ok"] for t in bad["tests"]] == [False, True]
    assert "AssertionError" in bad["tests"][0]["error"]
    broken = run("def add(a, b) return\n", ["assert add(1, 2) == 3"])
    assert not broken["passed"] and broken["error"].startswith("SyntaxError")


@pytest.mark.parametrize("name,program,reported", [
    ("reads outside its directory", "print(open('/etc/hostname').read())", "open /etc/hostname"),
    ("lists the root directory", "import os\nprint(os.listdir('/'))", "os.listdir /"),
    ("fork-bombs", "import os\nwhile True:\n    os.fork()", "os.fork"),
    ("spawns a process", "import subprocess\nsubprocess.run(['sh', '-c', 'echo hi'])", "import _posixsubprocess"),
    ("opens a socket", "import socket\nsocket.socket().connect(('127.0.0.1', 9))", "socket."),
    ("loads native code", "import ctypes", "import ctypes"),
    ("signals Ember", f"import os\nos.kill({os.getpid()}, 9)", "os.kill"),
])
def test_a_hostile_program_is_stopped_and_reported(name, program, reported):
    result = run(program)
    assert not result["passed"] and "not allowed" in result["error"], name
    assert any(b.startswith(reported) for b in result["blocked"]), result["blocked"]


def test_resource_limits_stop_memory_cpu_output_and_wall_time():
    assert run("x = bytearray(10 * 1024 ** 3)")["error"] == "memory limit"  # 10 GB
    assert run("while True:\n    pass")["error"] == "cpu limit"
    assert run("while True:\n    print('x' * 1000)")["error"] == "output limit"
    slow = asyncio.run(run_program("import time\ntime.sleep(60)", ["assert True"], {**LIMITS, "timeout_s": 1}))
    assert slow["error"] == "time limit" and not slow["passed"]


def test_the_program_sees_no_secret_and_its_directory_is_removed(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    result = run("import os\nprint(sorted(os.environ), os.getcwd())")
    assert "OPENAI_API_KEY" not in result["output"] and "sk-secret" not in result["output"]
    cwd = result["output"].split()[-1]
    assert "ember-sandbox-" in cwd and not os.path.exists(cwd)


def test_the_network_is_a_namespace_where_the_machine_allows_it():
    result = run("import socket\nprint(socket.gethostname())")
    assert result["network"] == ("namespace" if network_namespace() else "hook")


def test_ember_survives_a_batch_of_hostile_programs_run_at_once():
    programs = ["import os\nwhile True: os.fork()", "x = [0] * (10 ** 10)", "while True: pass",
                "import os\nos._exit(0)", "def f(): return 1"]

    async def all_at_once():
        return await asyncio.gather(*(run_program(p, ["assert f() == 1"], LIMITS) for p in programs))

    results = asyncio.run(all_at_once())
    assert [r["passed"] for r in results] == [False, False, False, False, True]
    assert results[3]["error"].startswith("no result")

"""Issue #17 acceptance: `ember validate` on generated hostile specs — under a 1 GB address-space limit
and a time limit — always ends with clean diagnostics and exit code 0 or 1 (never a crash, a hang,
an internal error or a traceback)."""

from __future__ import annotations

import pytest

from ember_compiler.testing.hostile import diagnostics, run_validate, write_hostile


@pytest.mark.parametrize("seed", [1, 2])
def test_validate_survives_hostile_specs_within_memory_and_time(tmp_path, seed):
    paths = write_hostile(tmp_path / "fuzz", seed, mutations=6)
    outcome = run_validate(paths, memory_mb=1024, timeout_s=40, cwd=tmp_path)  # all files, one process
    assert outcome.returncode == 1, outcome.stderr  # (0 would mean every hostile file validated)
    assert "Traceback" not in outcome.stderr and "internal error" not in outcome.stderr
    diags = diagnostics(outcome)
    assert all(d["code"] != "E999" for d in diags), [d for d in diags if d["code"] == "E999"]
    reported = {d["file"] for d in diags}
    for name in ("huge_n.yaml", "deep_flow.yaml", "laughs.yaml", "long_list.yaml", "comments.yaml", "tags.yaml",
                 "binary.yaml", "env_file.yaml", "passwd.yaml", "zero.yaml", "loop.yaml", "fifo.yaml"):
        assert any(f.endswith(name) for f in reported), f"{name}: no diagnostic"
    assert all(set(d) >= {"file", "line", "column", "code", "message"} for d in diags)

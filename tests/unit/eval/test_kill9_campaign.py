"""Issue #17 acceptance, small: random kill -9s of `ember eval` and its resumes lose no recorded row
(bench/kill9.py runs the 50-kill campaign)."""

from __future__ import annotations

from ember_compiler.testing.killer import campaign


def test_random_kill_9s_lose_no_row(tmp_path):
    report = campaign(tmp_path, kills=3, rows=3000, seed=5, max_wait_s=2.0)
    assert report.lost == 0, report
    assert report.finished and report.unique == 3000, report

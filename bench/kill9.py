"""Benchmark (not a test): 50 random kill -9s of `ember eval` and `ember eval --resume` on the sim.

Each kill lands at a random moment in the first 2.5 s of a process (interpreter start, the resume's
rewrite of a torn rows.jsonl, rows streaming); after every kill the rows recorded so far must all
still be there, and a last resume must finish with every row. Takes about two minutes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ember_compiler.testing.killer import campaign


def main(kills: int = 50, rows: int = 60_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        r = campaign(Path(tmp), kills=kills, rows=rows, seed=17, max_wait_s=3.0)
    print(f"kill -9 campaign: {r.kills} kills over {rows:,} rows in {r.wall_s:.0f} s")
    print(f"    resumes killed before they recorded a row: {r.kills_before_first_row}; resumes started on a torn last line: {r.torn_tails}")
    print(f"    rows recorded after each kill: {r.history}")
    print(f"    rows lost: {r.lost}; final resume {'finished' if r.finished else 'FAILED'}: "
          f"{r.unique:,} of {rows:,} rows ({r.rows - r.unique} duplicate lines of re-run rows)")
    if r.lost or not r.finished or r.unique != rows:
        sys.exit(1)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))

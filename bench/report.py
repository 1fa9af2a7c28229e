"""Benchmark (not a test): how big `ember report`'s page is and how fast Chromium opens it.

A 500-row eval (ensemble of 4 + judge on the sim, specs/data/sim-easy-hard.jsonl) with its inputs and
outputs recorded (`--record io`), its report written, then opened in headless Chromium (/usr/bin/chromium through
Playwright) several times, alternating with a blank page as the baseline: the time from navigation to
the `load` event (the row table is drawn by then: the script runs before it). Target: under 2 s and
under 5 MB.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ember_compiler import api  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ROUNDS = 7


def make_report(folder: Path) -> tuple[Path, float]:
    options = api.RunOptions(runs_dir=folder / "runs", cache_mode="off", record="io")
    result = api.evaluate(ROOT / "specs/sim/ensemble-judge.yaml", ROOT / "specs/data/sim-easy-hard.jsonl", options)
    t0 = time.perf_counter()
    path = api.report(result.run_dir)
    return path, time.perf_counter() - t0


def load_times(page_path: Path, blank: Path) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    report, baseline = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        for _ in range(ROUNDS):
            for target, into in ((page_path, report), (blank, baseline)):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                t0 = time.perf_counter()
                page.goto(target.as_uri(), wait_until="load")
                into.append(time.perf_counter() - t0)
                if target == page_path:
                    assert page.locator("#row-body tr.row").count() == 500
                page.close()
        browser.close()
    return report, baseline


def main() -> None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("skipped: needs the `browser` extra (pip install -e '.[browser]')")
        return
    if not CHROMIUM.is_file():
        print(f"skipped: needs {CHROMIUM} (apt-get install chromium)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path, write_s = make_report(Path(tmp))
        blank = Path(tmp) / "blank.html"
        blank.write_text("<!doctype html><title>blank</title>")
        size = path.stat().st_size
        report, baseline = load_times(path, blank)
    med, base = statistics.median(report), statistics.median(baseline)
    print("ember report: 500-row eval (ensemble n=4 + judge, sim) with recorded io")
    print(f"    page size                  {size / 1e6:.2f} MB   (target < 5 MB)")
    print(f"    writing the report         {write_s:.2f} s")
    print(f"    Chromium load, median of {ROUNDS}  {med:.3f} s   (blank page {base:.3f} s, ratio {med / base:.1f}; "
          f"target < 2 s)")


if __name__ == "__main__":
    main()

"""Make docs/report.png: the report of a small sim eval, as Chromium shows it with the wrong rows
filtered and one opened.

The eval is `specs/sim/ensemble-judge.yaml` on the 40 rows of `specs/data/sim-mcq.jsonl`, with sim
latencies (150 ms per sample request, 60 ms per judge), 8 rows in flight and `--record io`, so the timeline shows
waves of parallel calls. Needs the `browser` extra and /usr/bin/chromium.

    python docs/report_screenshot.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ember_compiler import api  # noqa: E402

OUT = ROOT / "docs" / "report.png"


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        options = api.RunOptions(runs_dir=Path(tmp), cache_mode="off", row_concurrency=8, record="io",
                                 sets={"models.worker.latency_ms": 150, "models.judge.latency_ms": 60})
        result = api.evaluate(ROOT / "specs/sim/ensemble-judge.yaml", ROOT / "specs/data/sim-mcq.jsonl", options)
        page_path = api.report(result.run_dir)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page.goto(page_path.as_uri())
            page.select_option("#f-status", "wrong")
            page.locator("#row-body tr.row").first.click()
            page.locator("#row-body tr.detail details.req summary").first.click()
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""The report opened in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser
download): it renders without console errors, the row filter and a row's drill-down work, and a
screenshot of each page is kept in `.ci/artifacts/` (CI's artifacts; ignored by git)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember_compiler import api

pytestmark = pytest.mark.needs("browser")
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS, SPECS = ROOT / ".ci" / "artifacts", ROOT / "specs"


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The runs and their pages, made before the browser starts (Playwright's sync API holds the event
    loop the runs would need)."""
    tmp = tmp_path_factory.mktemp("reports")
    options = api.RunOptions(runs_dir=tmp / "runs", cache_mode="off")
    ev = api.evaluate(SPECS / "sim/self-consistency.yaml", SPECS / "data/sim-easy-hard.jsonl",
                      options.replace(record="io"))
    run = api.run(SPECS / "sim/ensemble-judge.yaml", {"question": "Which?"}, options)
    sweep = api.sweep(SPECS / "sim/self-consistency.yaml", SPECS / "data/sim-mcq.jsonl", ["samples.n=1,3,5"], options)
    search = api.optimize(SPECS / "sim/optimize/ensemble-aggregate.yaml", SPECS / "data/sim-mcq.jsonl",
                          ["params.n=1,3,5"], options, method="exhaustive")
    return {"eval": (api.report(ev.run_dir), api.report_model(ev.run_dir)), "run": api.report(run.run_dir),
            "sweep": api.report(sweep.run_dir), "optimize": api.report(search.run_dir)}


@pytest.fixture(scope="module")
def browser(reports):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda req: problems.append(f"fetched {req.url}") if not req.url.startswith("file:") else None)
    page.goto(path.resolve().as_uri())
    return page, problems


def test_a_500_row_eval_filters_rows_and_drills_into_one(browser, reports):
    path, model = reports["eval"]
    wrong = [r for r in model["rows"] if r["scores"]["exact"] < 1]
    page, problems = open_page(browser, path)

    assert page.locator("#row-body tr.row").count() == 500
    assert page.locator("#f-count").inner_text() == "500 of 500 rows"
    page.select_option("#f-status", "wrong")
    assert page.locator("#row-body tr.row").count() == len(wrong)
    assert page.locator("#f-count").inner_text() == f"{len(wrong)} of 500 rows"
    ids = page.locator("#row-body tr.row td:nth-child(2)").all_inner_texts()
    assert ids == [r["id"] for r in wrong]

    target = wrong[0]
    page.locator(f'#row-body tr.row[data-key="{target["key"]}"]').click()
    detail = page.locator("#row-body tr.detail")
    assert detail.count() == 1
    assert detail.locator(".io-node h4").all_inner_texts() == ["samples ensemble", "majority vote"]
    recorded = model["io"][target["key"]]
    [vote] = [r for r in recorded if r["node"] == "majority"]
    counts = detail.locator('.io-node[data-node="majority"] .io-cols > div:nth-child(2) tr[data-k="counts"]')
    for answer, count in vote["outputs"]["counts"].items():  # the vote's counts, as a table
        assert counts.locator(f'tr[data-k="{answer}"] > td').inner_text() == str(count)
    [req] = [r for r in recorded if r["kind"] == "request"]
    detail.locator("details.req summary").first.click()  # the request: its messages and replies
    assert req["messages"][0]["content"] in detail.locator(".msgs").inner_text()
    replies = detail.locator("ol.replies li")
    assert replies.count() == 5 and [t.split("\n")[-1] for t in replies.all_inner_texts()] == \
        [t.split("\n")[-1] for t in req["texts"]]
    lit = page.locator("svg.gantt rect.bar.hl")  # the row's calls are picked out on the timeline
    assert lit.count() == 1 and lit.get_attribute("data-row") == target["trace"]

    page.fill("#f-text", target["id"])
    assert page.locator("#row-body tr.row").count() == 1
    page.fill("#f-text", "")
    page.locator(f'#row-body tr.row[data-key="{target["key"]}"]').click()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-eval.png"), full_page=True)
    assert problems == []


def test_a_run_without_recorded_io_says_so_and_a_sweep_and_a_search_render(browser, reports):
    page, problems = open_page(browser, reports["run"])
    assert "--record io" in page.locator("#io-note").inner_text()
    assert page.locator("#run-io").inner_text() == ""
    assert page.locator("svg.plan g.box").count() == 4
    page.screenshot(path=str(ARTIFACTS / "report-run.png"), full_page=True)

    page2, problems2 = open_page(browser, reports["sweep"])
    assert page2.locator("svg.curve circle.pt").count() == 3
    page2.screenshot(path=str(ARTIFACTS / "report-sweep.png"), full_page=True)

    page3, problems3 = open_page(browser, reports["optimize"])
    assert page3.locator("svg.curve circle.pt").count() == 2 * 3  # by calls and by cost
    assert page3.locator("svg.curve circle.best").count() == 2
    assert page3.locator("#evaluations tbody tr").count() == 3
    page3.screenshot(path=str(ARTIFACTS / "report-optimize.png"), full_page=True)
    assert problems == [] and problems2 == [] and problems3 == []

"""The report page as a file: self-contained, its charts drawn from the model, its data blob intact."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from ember_compiler import api
from ember_compiler.testing.io_records import write_io

pytestmark = pytest.mark.usefixtures("at_repo_root")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.blob = ""
        self._in_blob = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_blob = tag == "script" and dict(attrs).get("id") == "ember-data"

    def handle_data(self, data):
        if self._in_blob:
            self.blob += data

    def handle_endtag(self, tag):
        self._in_blob = False


def page(path):
    parser = Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def options(tmp_path):
    return api.RunOptions(runs_dir=tmp_path / "runs", cache_mode="off")


def test_the_page_loads_nothing_from_outside_and_draws_every_request(tmp_path):
    result = api.evaluate("specs/sim/ensemble-judge.yaml", "specs/data/sim-mcq.jsonl", options(tmp_path))
    path = api.report(result.run_dir)
    assert path == result.run_dir / "report.html"
    p = page(path)
    external = [(t, a) for t, a in p.tags for k in ("src", "href") if a.get(k)]
    assert external == []  # every script, style and image is inline
    assert [t for t, _ in p.tags if t in ("link", "iframe", "img")] == []
    bars = [a for t, a in p.tags if t == "rect" and "bar" in (a.get("class") or "")]
    assert len(bars) == result.summary["requests"]
    boxes = {a["data-node"] for t, a in p.tags if t == "g" and "data-node" in a}
    assert boxes == {"#inputs", "candidates", "final", "#outputs"}
    data = json.loads(p.blob)
    assert [r["id"] for r in data["rows"]] == [f"q{i:02d}" for i in range(40)]
    assert data["order"] == ["candidates", "final"]


def test_recorded_text_cannot_break_out_of_the_data_blob(tmp_path):
    result = api.run("specs/sim/single.yaml", {"question": "Which?"}, options(tmp_path))
    hostile = "</script><script>alert(1)</script><!-- \u2028"
    write_io(result.run_dir, [{"kind": "request", "row": 0, "node": "answer", "span_id": "x", "binding": "m",
                               "messages": [{"role": "user", "content": hostile}], "texts": [hostile],
                               "finish_reasons": ["stop"], "cached": False}])
    path = api.report(result.run_dir, tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    assert "alert(1)</script>" not in text and text.count("<script") == 2
    assert json.loads(page(path).blob)["io"]["0"][0]["texts"] == [hostile]


def test_a_sweep_page_draws_its_curve_with_the_front_marked(tmp_path):
    result = api.sweep("specs/sim/self-consistency.yaml", "specs/data/sim-mcq.jsonl", ["samples.n=1,3,5,9"],
                       options(tmp_path))
    p = page(api.report(result.run_dir))
    front = api.report_model(result.run_dir)["sweep"]["front_calls"]
    dots = [a for t, a in p.tags if t == "circle" and "pt" in (a.get("class") or "").split()]
    assert len(dots) == 4
    assert [int(a["data-point"]) for a in dots if "onfront" in a["class"]] == front


def test_a_500_row_eval_with_recorded_io_stays_under_5_mb(tmp_path):
    result = api.evaluate("specs/sim/ensemble-judge.yaml", "specs/data/sim-easy-hard.jsonl",
                          api.RunOptions(runs_dir=tmp_path / "runs", cache_mode="off", record="io"))
    path = api.report(result.run_dir)
    data = json.loads(page(path).blob)
    assert len(data["rows"]) == 500 and len(data["io"]) == 500
    assert path.stat().st_size < 5_000_000


def test_the_page_has_no_placeholder_left(tmp_path):
    result = api.run("specs/sim/ensemble-judge.yaml", {"question": "Which?"}, options(tmp_path))
    text = api.report(result.run_dir).read_text(encoding="utf-8")
    assert not re.search(r"\{\{|\{%|Undefined|None</", text)


def test_an_optimize_page_draws_both_scatters_with_the_front_and_the_best_and_its_tables(tmp_path):
    result = api.optimize("specs/sim/optimize/ensemble-aggregate.yaml", "specs/data/sim-mcq.jsonl",
                          ["params.n=1,3,5", "nodes.aggregate.spec=aggregate/vote.yaml,aggregate/judge.yaml"],
                          options(tmp_path), method="coordinate", split=0.5)
    path = api.report(result.run_dir)
    p, text = page(path), path.read_text(encoding="utf-8")
    search = api.report_model(result.run_dir)["optimize"]
    curves = [a for t, a in p.tags if t == "svg" and a.get("class") == "curve"]
    assert [a["data-x"] for a in curves] == ["calls_per_row", "cost_per_row_usd"]
    dots = [a for t, a in p.tags if t == "circle" and "pt" in (a.get("class") or "").split()]
    assert len(dots) == 2 * len(result.evaluations)
    by_calls, by_cost = dots[:len(dots) // 2], dots[len(dots) // 2:]
    assert [int(a["data-point"]) for a in by_calls if "onfront" in a["class"]] == search["front_calls"]
    assert [int(a["data-point"]) for a in by_cost if "onfront" in a["class"]] == search["front_cost"]
    rings = [int(a["data-point"]) for t, a in p.tags if t == "circle" and a.get("class") == "best"]
    assert rings == [search["best"]] * 2
    table = text.split('id="evaluations"')[1].split("</table>")[0]
    assert table.count("<tr") == 1 + len(result.evaluations) and table.count('class="best"') == 1
    assert "<th>params.n</th><th>nodes.aggregate.spec</th>" in table and "<code>aggregate/judge.yaml</code>" in table
    trajectory = text.split('id="trajectory"')[1].split("</table>")[0]
    assert trajectory.count("<tr") == 1 + len(result.search.trajectory) and "params.n: tried" in trajectory
    assert "best accuracy (dev)" in text and "best accuracy (test)" in text and "cost spent" in text
    assert f"{result.best.accuracy:.4f}" in text and f"{result.test['metrics']['accuracy']:.4f}" in text
    assert [(t, a) for t, a in p.tags for k in ("src", "href") if a.get(k)] == []
    assert not re.search(r"\{\{|\{%|Undefined|None</", text)

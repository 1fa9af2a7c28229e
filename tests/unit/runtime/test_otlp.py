"""OTLP export (issue 16): a run's spans reach an OTLP/HTTP receiver through the OpenTelemetry SDK and
its exporter, every span with its attributes; prompts and outputs leave the process only with
`--record io`, as the GenAI conventions' opt-in `gen_ai.input.messages` / `gen_ai.output.messages`.

The receiver (`testing/otlp.py`) is a real HTTP server on 127.0.0.1 in this process; it decodes each
request with the official protobuf definitions (`opentelemetry-proto`'s `ExportTraceServiceRequest`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler import api
from ember_compiler.testing.otlp import Receiver, attr_value

SPEC = Path(__file__).resolve().parents[3] / "specs" / "sim" / "ensemble-judge.yaml"
MARKER = "Which moon of Saturn hides an ocean, 7781?"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _file_spans(run_dir: Path) -> dict[str, dict]:
    spans = [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()]
    return {s["span_id"]: s for s in spans}


def _as_exported(value: object) -> object:
    """How a trace.jsonl attribute value is sent: primitives and string lists as they are, else JSON."""
    if isinstance(value, str | bool | int | float) or (isinstance(value, list) and value
                                                       and all(isinstance(x, str) for x in value)):
        return value
    return json.dumps(value)


@pytest.mark.needs("otlp")
def test_every_span_arrives_with_its_ids_times_and_attributes(receiver, tmp_path):
    result = api.run(SPEC, {"question": MARKER}, api.RunOptions(otlp=receiver.url, runs_dir=tmp_path))
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}  # a URL without a path gets /v1/traces
    written = _file_spans(result.run_dir)
    got = {span.span_id.hex(): (resource, span) for resource, span in receiver.spans()}
    assert set(got) == set(written) and len(written) == 1 + 2 + 2  # the run, 2 nodes, 2 requests
    for span_id, expected in written.items():
        resource, span = got[span_id]
        assert resource["service.name"] == "ember"
        assert span.trace_id.hex() == expected["trace_id"]
        assert (span.parent_span_id.hex() or None) == expected["parent_span_id"]
        assert span.name == expected["name"]
        assert span.start_time_unix_nano == expected["start_time_unix_nano"]
        assert span.end_time_unix_nano == expected["end_time_unix_nano"]
        kind = {"CLIENT": span.SPAN_KIND_CLIENT, "INTERNAL": span.SPAN_KIND_INTERNAL}[expected["kind"]]
        assert span.kind == kind
        attrs = {kv.key: attr_value(kv.value) for kv in span.attributes}
        assert attrs == {k: _as_exported(v) for k, v in expected["attributes"].items() if v is not None}
    client = [s for _, s in got.values() if s.kind == s.SPAN_KIND_CLIENT]
    models = {kv.value.string_value for s in client for kv in s.attributes if kv.key == "gen_ai.request.model"}
    assert models and all(s.name.startswith("chat ") for s in client)


@pytest.mark.needs("otlp")
def test_without_record_io_no_prompt_or_output_text_leaves_the_process(receiver, tmp_path):
    result = api.run(SPEC, {"question": MARKER}, api.RunOptions(otlp=receiver.url, runs_dir=tmp_path))
    sent = b"".join(receiver.bodies)
    assert len(receiver.spans()) == 5
    assert MARKER.encode() not in sent and b"7781" not in sent
    assert b"Reasoning (sim)" not in sent  # the sim's replies
    assert result.outputs["answer"] and b"gen_ai.input.messages" not in sent and b"gen_ai.output.messages" not in sent


@pytest.mark.needs("otlp")
def test_with_record_io_client_spans_carry_the_opt_in_content_attributes(receiver, tmp_path):
    result = api.run(SPEC, {"question": MARKER},
                     api.RunOptions(otlp=receiver.url, record="io", runs_dir=tmp_path))
    requests = {r["span_id"]: r for r in api.read_io(result.run_dir) if r["kind"] == "request"}
    client = [s for _, s in receiver.spans() if s.kind == s.SPAN_KIND_CLIENT]
    assert {s.span_id.hex() for s in client} == set(requests)
    for span in client:
        attrs = {kv.key: attr_value(kv.value) for kv in span.attributes}
        recorded = requests[span.span_id.hex()]
        inputs = json.loads(attrs["gen_ai.input.messages"])
        outputs = json.loads(attrs["gen_ai.output.messages"])
        assert [m["parts"][0]["content"] for m in inputs] == [m["content"] for m in recorded["messages"]]
        assert [m["role"] for m in inputs] == [m["role"] for m in recorded["messages"]]
        assert [m["parts"][0]["content"] for m in outputs] == recorded["texts"]
        assert all(m["role"] == "assistant" and m["finish_reason"] == "stop" for m in outputs)
    assert any(MARKER in s for s in (json.dumps(json.loads(
        {kv.key: attr_value(kv.value) for kv in c.attributes}["gen_ai.input.messages"])) for c in client))
    # the node and run spans never carry content
    others = [s for _, s in receiver.spans() if s.kind != s.SPAN_KIND_CLIENT]
    assert others and not any(kv.key.startswith("gen_ai.input") for s in others for kv in s.attributes)
    # nor does trace.jsonl: io.jsonl holds the content, linked by span id
    assert MARKER not in (result.run_dir / "trace.jsonl").read_text()


@pytest.mark.needs("otlp")
def test_the_standard_variable_turns_export_on(receiver, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-study")
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["run", str(SPEC), "-i", "question=Q?", "--no-trace"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    spans = receiver.spans()
    assert len(spans) == 5 and {r["service.name"] for r, _ in spans} == {"my-study"}  # exported without a file
    assert receiver.paths[0] == "/v1/traces"


@pytest.mark.needs("otlp")
def test_the_cli_flag_exports_an_eval(receiver, tmp_path):
    data = SPEC.parents[1] / "data" / "sim-mcq.jsonl"
    out = CliRunner().invoke(app, ["eval", str(SPEC), "--data", str(data), "--limit", "3", "--no-progress",
                                   "--otlp", receiver.url + "/v1/traces", "--runs-dir", str(tmp_path)],
                             catch_exceptions=False)
    assert out.exit_code == 0, out.output
    roots = [s for _, s in receiver.spans() if s.name == "invoke_workflow ensemble-judge-sim"]
    assert len(roots) == 3 and len({s.trace_id for s in roots}) == 3  # one trace per row
    assert len(receiver.spans()) == 3 * 5


def test_a_malformed_otlp_url_is_a_usage_error(tmp_path):
    out = CliRunner().invoke(app, ["run", str(SPEC), "-i", "question=Q?", "--otlp", "localhost:4318",
                                   "--runs-dir", str(tmp_path)])
    assert out.exit_code == 2 and "--otlp expects an http(s) URL" in out.output


def test_without_the_extra_the_flag_is_an_error_and_the_variable_a_warning(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)  # not installed
    flag = CliRunner().invoke(app, ["run", str(SPEC), "-i", "question=Q?", "--otlp", "http://127.0.0.1:9",
                                    "--runs-dir", str(tmp_path)])
    assert flag.exit_code == 2
    assert "error: exporting spans over OTLP needs the otlp extra: pip install 'ember-compiler[otlp]'" in flag.output
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    env = CliRunner().invoke(app, ["run", str(SPEC), "-i", "question=Q?", "--runs-dir", str(tmp_path)])
    assert env.exit_code == 0, env.output  # the run is not failed by someone else's variable
    assert "warning: OTEL_EXPORTER_OTLP_ENDPOINT is set but spans are not exported" in env.output

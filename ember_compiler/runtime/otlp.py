"""OpenTelemetry export: the spans of `trace.jsonl` sent to an OTLP/HTTP endpoint (`--otlp URL`, or
the standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), so Phoenix,
Jaeger or Langfuse show an Ember run.

Ember's spans are made after the fact (start and end known, ids its own), so each becomes an SDK
`ReadableSpan` with the same trace id, span id, parent, times, status and attributes, handed to the
SDK's `BatchSpanProcessor` in front of its `OTLPSpanExporter`: batching, retries and the HTTP calls
happen on the SDK's own thread, off the run's event loop. The exporter reads the other standard
variables itself (`OTEL_EXPORTER_OTLP_HEADERS` for a Langfuse key, `..._TIMEOUT`, `..._COMPRESSION`);
`OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the service (default `ember`).

Prompts and outputs leave the process only with `--record io`: then each CLIENT span also carries the
GenAI conventions' opt-in attributes `gen_ai.input.messages` and `gen_ai.output.messages`
(`content_attributes`). Needs the `otlp` extra (`pip install 'ember-compiler[otlp]'`).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
INSTALL = "pip install 'ember-compiler[otlp]'"


def endpoint_from_env() -> str | None:
    """The endpoint the standard variables name (None: none, or `OTEL_SDK_DISABLED=true`)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    for name in ENDPOINT_VARS:
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    return None


def traces_url(url: str) -> str:
    """`--otlp URL` as the exporter's endpoint: a URL without a path gets `/v1/traces` (like
    `OTEL_EXPORTER_OTLP_ENDPOINT`); one with a path is used as it is.

    Raises:
        UsageError: not an http(s) URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--otlp expects an http(s) URL such as http://localhost:4318, got '{url}'")
    return url if parts.path.strip("/") else url.rstrip("/") + "/v1/traces"


def content_attributes(messages: list[dict[str, Any]], texts: list[str] | None,
                       finish_reasons: list[str] | None) -> dict[str, str]:
    """The GenAI semantic conventions' opt-in content attributes of one chat request (JSON strings)."""
    attrs = {"gen_ai.input.messages": json.dumps(
        [{"role": m.get("role"), "parts": [{"type": "text", "content": m.get("content")}]} for m in messages],
        ensure_ascii=False)}
    if texts is not None:
        reasons = list(finish_reasons or [])
        attrs["gen_ai.output.messages"] = json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": t}],
              "finish_reason": reasons[i] if i < len(reasons) else None} for i, t in enumerate(texts)],
            ensure_ascii=False)
    return attrs


class OtlpExport:
    """Hands finished spans to the SDK's batch processor and OTLP/HTTP exporter.

    Args:
        endpoint: `--otlp URL`; None: the one the standard variables name (the exporter reads them).

    Raises:
        UsageError: the `otlp` extra is not installed, or the URL is not http(s).
    """

    def __init__(self, endpoint: str | None) -> None:
        try:
            from opentelemetry import trace as api
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import ReadableSpan
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
            from opentelemetry.trace.status import Status, StatusCode
        except ImportError:
            raise UsageError(f"exporting spans over OTLP needs the otlp extra: {INSTALL}") from None
        self._api, self._readable, self._status = api, ReadableSpan, (Status, StatusCode)
        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "ember"}))
        self._resource = resource
        self._scope = InstrumentationScope("ember_compiler")
        exporter = OTLPSpanExporter(endpoint=traces_url(endpoint) if endpoint else None)
        self._processor = BatchSpanProcessor(exporter)
        self._kinds = {"INTERNAL": api.SpanKind.INTERNAL, "CLIENT": api.SpanKind.CLIENT}

    def span(self, trace_id: str, span_id: str, parent: str | None, name: str, kind: str, start_s: float,
             end_s: float, status: str, attributes: dict[str, Any], content: dict[str, str] | None) -> None:
        api = self._api
        flags = api.TraceFlags(api.TraceFlags.SAMPLED)
        tid = int(trace_id, 16)
        context = api.SpanContext(tid, int(span_id, 16), is_remote=False, trace_flags=flags)
        parent_ctx = api.SpanContext(tid, int(parent, 16), is_remote=False, trace_flags=flags) if parent else None
        attrs = {k: _attribute(v) for k, v in attributes.items() if v is not None}
        if content:
            attrs.update(content)
        Status, StatusCode = self._status
        self._processor.on_end(self._readable(
            name, context=context, parent=parent_ctx, resource=self._resource, attributes=attrs,
            kind=self._kinds.get(kind, api.SpanKind.INTERNAL), instrumentation_scope=self._scope,
            status=Status(StatusCode.ERROR if status == "ERROR" else StatusCode.OK),
            start_time=int(start_s * 1e9), end_time=int(end_s * 1e9)))

    def close(self) -> None:
        """Send what is queued and stop the exporter's thread."""
        self._processor.shutdown()


def _attribute(value: Any) -> Any:
    """An OTel attribute value: a primitive or a list of one primitive type; anything else as JSON."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return json.dumps(value, default=str)


__all__ = ["ENDPOINT_VARS", "OtlpExport", "content_attributes", "endpoint_from_env", "traces_url"]

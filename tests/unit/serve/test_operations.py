"""`ember serve` in operation, through the openai SDK and raw sockets: keys, backpressure, cancellation
when a client leaves, real token streaming, upstream failures without secrets, metrics, SIGTERM drain.

Requests are held in flight structurally (`HeldUpstream` answers only when released), never by timing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import openai
import pytest

from ember_compiler import api
from ember_compiler.testing.fake_server import KEY_ENV, FakeServer, binding
from ember_compiler.testing.serving import HeldUpstream, ServerThread, one_call_spec

MSG = [{"role": "user", "content": "What is 7 * 6?"}]


def spec(tmp_path: Path, binding_text: str, name: str = "held") -> Path:
    return one_call_spec(tmp_path, binding_text, name)


def options(tmp_path: Path, **changes) -> api.ServeOptions:
    return api.ServeOptions(trace=tmp_path / "trace.jsonl", access_log=False, **changes)


def in_thread(fn, *args, **kwargs):
    """Run `fn` in a thread; the returned function joins it and returns its result (or raises)."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            out["error"] = exc
    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def result(timeout=30):
        thread.join(timeout)
        assert not thread.is_alive(), "the request did not finish"
        if "error" in out:
            raise out["error"]
        return out["value"]
    return result


def until(predicate, what: str):
    for _ in range(3000):  # polls a state, asserts no duration
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"never: {what}")


HTTP = httpx2.Client(trust_env=False)


def metric(url: str, name: str) -> float:
    total = 0.0
    for line in HTTP.get(url + "/metrics").text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture()
def held(monkeypatch):
    monkeypatch.setenv("HELD_UPSTREAM_KEY", "sk-held-upstream")
    with HeldUpstream() as upstream:
        yield upstream


# -- auth -----------------------------------------------------------------------------------------------
def test_keys_are_required_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIENT_KEY", "ember-key-1")
    app = api.serve_app([spec(tmp_path, "{provider: sim}", "one")], options(tmp_path, api_key_env="CLIENT_KEY"))
    with ServerThread(app) as url:
        for key in ("wrong-key", "ember-key-"):
            with pytest.raises(openai.AuthenticationError) as caught:
                openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0).models.list()
            assert caught.value.code == "invalid_api_key"
        no_header = HTTP.post(url + "/v1/chat/completions", json={"model": "one", "messages": MSG})
        assert no_header.status_code == 401 and no_header.json()["error"]["type"] == "authentication_error"
        good = openai.OpenAI(base_url=url + "/v1", api_key="ember-key-1", max_retries=0)
        assert good.chat.completions.create(model="one", messages=MSG).choices[0].message.content


def test_a_keys_rpm_is_enforced_before_any_upstream_call(tmp_path, monkeypatch):
    monkeypatch.setenv("ALICE", "alice-key")
    monkeypatch.setenv("BOB", "bob-key")
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  - {name: alice, key_env: ALICE, rpm: 2}\n  - {name: bob, key_env: BOB}\n")
    app = api.serve_app([spec(tmp_path, "{provider: sim}", "one")], options(tmp_path, keys_file=keys))
    with ServerThread(app) as url:
        alice = openai.OpenAI(base_url=url + "/v1", api_key="alice-key", max_retries=0)
        for _ in range(2):
            alice.chat.completions.create(model="one", messages=MSG)
        with pytest.raises(openai.RateLimitError) as caught:
            alice.chat.completions.create(model="one", messages=MSG)
        assert caught.value.code == "rate_limit_exceeded" and "alice" in caught.value.message
        assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
        assert metric(url, "ember_serve_upstream_requests_total") == 2  # the refused one called nothing
        bob = openai.OpenAI(base_url=url + "/v1", api_key="bob-key", max_retries=0)
        assert bob.chat.completions.create(model="one", messages=MSG).choices  # bob has no limit


def test_without_keys_only_loopback_unless_insecure(tmp_path):
    path = spec(tmp_path, "{provider: sim}", "one")
    with pytest.raises(api.UsageError, match="not a loopback address"):
        api.serve_app([path], options(tmp_path, host="0.0.0.0"))
    assert api.serve_app([path], options(tmp_path, host="0.0.0.0", insecure_no_auth=True)) is not None
    assert api.serve_app([path], options(tmp_path, host="::1")) is not None


def test_invalid_specs_stop_the_server_from_starting(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ember: 1\nname: bad\nnodes:\n  g: {op: ensembel}\noutputs: {answer: '${g.answer}'}\n")
    with pytest.raises(api.SpecInvalid) as caught:
        api.serve_app([tmp_path], options(tmp_path))
    assert "bad.yaml:4" in str(caught.value)


# -- backpressure, cancellation, streaming ----------------------------------------------------------------
def test_beyond_the_queue_requests_get_429_with_retry_after(tmp_path, held):
    app = api.serve_app([spec(tmp_path, held.binding)], options(tmp_path, max_concurrency=1, queue=1))
    with ServerThread(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        first = in_thread(client.chat.completions.create, model="held", messages=MSG)
        assert held.arrived.acquire(timeout=30)
        second = in_thread(client.chat.completions.create, model="held", messages=MSG)
        until(lambda: HTTP.get(url + "/healthz").json()["queued"] == 1, "a request queued")
        assert metric(url, "ember_serve_queue_depth") == 1 and metric(url, "ember_serve_in_flight") == 1
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="held", messages=MSG)
        assert caught.value.code == "server_busy" and caught.value.response.headers["retry-after"] == "1"
        held.release()
        assert first().choices[0].message.content == "A"
        assert second().choices[0].message.content == "A"
        assert held.requests == 2


def test_a_client_that_leaves_cancels_its_upstream_request(tmp_path, held):
    app = api.serve_app([spec(tmp_path, held.binding)], options(tmp_path))
    with ServerThread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        body = b'{"model": "held", "messages": [{"role": "user", "content": "q"}]}'
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert held.arrived.acquire(timeout=30)
        sock.close()
        assert held.left.acquire(timeout=30)  # the upstream saw its request's connection go
        until(lambda: metric(url, 'ember_serve_requests_total{model="held",status="499"}') == 1, "499 counted")
        assert metric(url, "ember_serve_in_flight") == 0


def test_streaming_sends_tokens_before_the_run_ends(tmp_path, held):
    app = api.serve_app([spec(tmp_path, held.binding)], options(tmp_path))
    with ServerThread(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(model="held", messages=MSG, stream=True,
                                                stream_options={"include_usage": True})
        chunks = iter(stream)
        first = next(chunks)
        while not (first.choices and first.choices[0].delta.content):
            first = next(chunks)
        # the upstream still holds the rest of its answer: this token came before the run ended
        assert first.choices[0].delta.content == HeldUpstream.FIRST and not held.gate.is_set()
        assert metric(url, "ember_serve_in_flight") == 1
        held.release()
        rest = list(chunks)
        text = HeldUpstream.FIRST + "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
        assert text == HeldUpstream.FIRST + HeldUpstream.REST
        assert rest[-2].model_extra["ember"]["answer"] == "A"
        assert rest[-1].usage.prompt_tokens == 10 and rest[-1].usage.prompt_tokens_details.cached_tokens == 4
        until(lambda: metric(url, 'ember_serve_requests_total{model="held",status="200"}') == 1, "counted")
        tokens = {kind: metric(url, f'ember_serve_tokens_total{{kind="{kind}",model="held"}}')
                  for kind in ("input", "output", "cached")}
        assert tokens == {"input": 10, "output": 6, "cached": 4}


def test_a_request_past_its_deadline_is_504(tmp_path, held):
    app = api.serve_app([spec(tmp_path, held.binding)], options(tmp_path, timeout_s=0.2))
    with ServerThread(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="held", messages=MSG)  # the upstream never answers
        assert caught.value.status_code == 504 and caught.value.code == "timeout"
        assert held.left.acquire(timeout=30)  # its upstream request was cancelled


def test_a_streaming_client_that_leaves_cancels_its_run(tmp_path, held):
    app = api.serve_app([spec(tmp_path, held.binding)], options(tmp_path))
    with ServerThread(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(model="held", messages=MSG, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()
        until(lambda: metric(url, 'ember_serve_requests_total{model="held",status="499"}') == 1, "499 counted")
        assert metric(url, "ember_serve_in_flight") == 0 and not held.gate.is_set()


def test_an_upstream_failure_is_502_with_no_secret(tmp_path, monkeypatch):
    secret = "sk-upstream-" + "s3cr3t" * 8
    monkeypatch.setenv(KEY_ENV, secret)
    fake = FakeServer()
    try:
        app = api.serve_app([spec(tmp_path, binding(fake.url, extra=", max_retries: 0"), "fake")],
                            options(tmp_path))
        with ServerThread(app) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "[echo auth]"}])
            assert caught.value.status_code == 502 and caught.value.code == "upstream_error"
            assert "node 'g'" in caught.value.message and "500" in caught.value.message
            assert secret not in caught.value.response.text
            assert secret not in HTTP.get(url + "/metrics").text
        assert secret not in (tmp_path / "trace.jsonl").read_text()
    finally:
        fake.close()


def test_the_server_budget_is_shared_by_every_request(tmp_path):
    run = api.RunOptions(runs_dir=None, budget=api.Budget(max_calls=3))
    app = api.serve_app([spec(tmp_path, "{provider: sim}", "one")], options(tmp_path, run=run))
    with ServerThread(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        for _ in range(3):
            client.chat.completions.create(model="one", messages=MSG)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="one", messages=MSG)
        assert caught.value.code == "budget_exceeded"


# -- SIGTERM ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_stops_accepting_and_drains_requests_in_flight(tmp_path, held):
    port = free_port()
    ember = Path(sys.executable).parent / "ember"
    proc = subprocess.Popen([str(ember), "serve", str(spec(tmp_path, held.binding)), "--port", str(port),
                             "--trace", str(tmp_path / "trace.jsonl")], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return HTTP.get(url + "/healthz").status_code == 200
            except httpx2.TransportError:
                return proc.poll() is not None
        until(up, "the server started")
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = in_thread(client.chat.completions.create, model="held", messages=MSG)
        assert held.arrived.acquire(timeout=30)
        proc.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                return False
            except OSError:
                return True
        until(refused, "new connections refused")
        held.release()
        assert reply().choices[0].message.content == "A"  # the request in flight was answered
        assert proc.wait(timeout=30) == -signal.SIGTERM  # drained, then ends as SIGTERM says (shell: 143)
        log = proc.stderr.read()
        assert '"POST /v1/chat/completions" 200 model=held' in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.needs("otlp")
def test_every_requests_spans_are_exported_over_otlp(tmp_path):
    from ember_compiler.testing.otlp import Receiver

    receiver = Receiver()
    try:
        run = api.RunOptions(runs_dir=None, otlp=receiver.url)
        app = api.serve_app([spec(tmp_path, "{provider: sim}", "sim-one")], options(tmp_path, run=run))
        with ServerThread(app) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            wanted = {client.chat.completions.create(model="sim-one", messages=MSG, seed=seed)
                      .model_extra["ember"]["trace_ids"][0] for seed in range(2)}
        # the server's shutdown flushed the export: each request's run, node and call spans arrived
        spans = [s for _, s in receiver.spans()]
        roots = {s.trace_id.hex() for s in spans if s.name == "invoke_workflow sim-one"}
        assert len(wanted) == 2 and wanted == roots
        assert {s.trace_id.hex() for s in spans if s.name.startswith("chat ")} == wanted
        assert (tmp_path / "trace.jsonl").read_text().count("invoke_workflow sim-one") == 2  # and the file
    finally:
        receiver.close()

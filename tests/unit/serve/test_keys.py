"""Client keys: the keys file, constant-time lookup, per-key requests per minute and cost per UTC day."""

from __future__ import annotations

import hashlib

import pytest

from ember_compiler.errors import UsageError
from ember_compiler.serve.keys import KeyRing, load_keys
from ember_compiler.serve.openai_shapes import ApiError


class Clock:
    def __init__(self) -> None:
        self.now, self.day, self.left = 1000.0, "2026-01-01", 3600.0

    def __call__(self) -> float:
        return self.now

    def today(self) -> tuple[str, float]:
        return self.day, self.left


def ring(tmp_path, text: str, clock: Clock) -> KeyRing:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    return KeyRing(load_keys(path), clock=clock, today=clock.today)


def test_the_file_names_keys_by_variable_or_by_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("A_KEY", "alpha")
    digest = hashlib.sha256(b"beta").hexdigest()
    keys = ring(tmp_path, f"keys:\n  - {{name: a, key_env: A_KEY}}\n  - {{name: b, key_sha256: {digest}}}\n", Clock())
    assert keys.authenticate("Bearer alpha").name == "a"
    assert keys.authenticate("Bearer beta").name == "b"
    for header in (None, "alpha", "Bearer alph", "Bearer gamma"):
        with pytest.raises(ApiError) as caught:
            keys.authenticate(header)
        assert caught.value.status == 401


def test_requests_per_minute_is_a_sliding_window(tmp_path, monkeypatch):
    monkeypatch.setenv("A_KEY", "alpha")
    clock = Clock()
    keys = ring(tmp_path, "keys:\n  - {name: a, key_env: A_KEY, rpm: 2}\n", clock)
    key = keys.authenticate("Bearer alpha")
    keys.admit(key)
    clock.now += 30
    keys.admit(key)
    with pytest.raises(ApiError) as caught:
        keys.admit(key)
    assert caught.value.status == 429 and caught.value.headers() == {"Retry-After": "30"}
    clock.now += 30.5  # the first request left the window
    keys.admit(key)


def test_cost_per_day_stops_a_key_until_utc_midnight(tmp_path, monkeypatch):
    monkeypatch.setenv("A_KEY", "alpha")
    clock = Clock()
    keys = ring(tmp_path, "keys:\n  - {name: a, key_env: A_KEY, cost_per_day_usd: 1}\n", clock)
    key = keys.authenticate("Bearer alpha")
    keys.admit(key)
    key.spend(0.6)
    keys.admit(key)
    key.spend(0.6)
    with pytest.raises(ApiError) as caught:
        keys.admit(key)
    assert caught.value.code == "budget_exceeded" and caught.value.headers() == {"Retry-After": "3600"}
    clock.day = "2026-01-02"
    keys.admit(key)  # a new day, a new allowance


@pytest.mark.parametrize(("text", "message"), [
    ("keys: []\n", "at least one key"),
    ("keys:\n  - {name: a}\n", "exactly one of key_env and key_sha256"),
    ("keys:\n  - {name: a, key_env: NOT_SET_ANYWHERE}\n", "NOT_SET_ANYWHERE is not set"),
    ("keys:\n  - {name: a, key_sha256: abc}\n", "64 hex digits"),
    ("keys:\n  - {name: a, key_sha256: '" + "0" * 64 + "', rpm: -1}\n", "rpm must be a positive number"),
    ("keys:\n  - {name: a, key_sha256: '" + "0" * 64 + "', rmp: 1}\n", "unknown field 'rmp'"),
])
def test_a_bad_keys_file_is_one_line_naming_the_entry(tmp_path, text, message):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_keys(path)

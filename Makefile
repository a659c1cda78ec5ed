# The README's two commands: `make run` (set up, train every example model on the embedded
# default) and `make test` (set up with the test tools, run the suite). .ci/run calls `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run dev test lint bench

$(STAMP): pyproject.toml scripts/system-packages.sh
	bash scripts/system-packages.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/mlserve validate
	$(VENV)/bin/mlserve train

dev: setup
	$(VENV)/bin/mlserve dev

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	command -v wrk >/dev/null && command -v hey >/dev/null || apt-get install -y -qq wrk hey
	$(PY) -m bench.run $(BENCH_ARGS)

test: setup lint
	$(VENV)/bin/python -m pytest -q

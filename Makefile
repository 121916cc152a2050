# authz-server: make help lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create or update the virtual environment in .venv

run: $(STAMP) ## run the demo: Envoy on 127.0.0.1:8080 -> authz-server -> echo upstream
	$(BIN)/python -m authz_server.demo

check: $(STAMP) ## format check, lint and type check (changes nothing)
	$(BIN)/ruff format --check authz_server tests bench
	$(BIN)/ruff check authz_server tests bench
	$(BIN)/mypy
	$(BIN)/mypy --strict bench

test: check ## run the whole test suite (real Envoy, real JWKS server, loopback only)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP) ## benchmark: Envoy shapes A/B/C, in-process Check, memory (BENCH_ARGS=--quick)
	@command -v wrk >/dev/null && command -v h2load >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq wrk nghttp2-client; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

fuzz: $(STAMP) ## long property-based fuzzing of the Check entry point
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=0 tests/fuzz

format: $(STAMP) ## reformat the code in place
	$(BIN)/ruff format authz_server tests bench
	$(BIN)/ruff check --fix authz_server tests bench

.PHONY: help venv run check test bench fuzz format

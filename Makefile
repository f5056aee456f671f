# brokerpool developer commands. `make demo` and `make test` work on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
# The demo needs the package and its own dependencies (amqp, vine), none of the test extra.
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: install demo test lint typecheck docs bench rabbitmq redis clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): $(BIN)/python pyproject.toml setup.cfg
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP): $(BIN)/python pyproject.toml setup.cfg
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(DEMO_STAMP)

install: $(STAMP)  ## create .venv and install brokerpool (editable) with its test extra

demo: $(DEMO_STAMP)  ## create .venv with brokerpool alone and run the demo on the embedded memory:// broker
	$(BIN)/brokerpool demo

rabbitmq:  ## start the system RabbitMQ if it is installed but not answering
	@sh .ci/ensure-rabbitmq

redis:  ## start the system Redis if it is installed but not answering
	@sh .ci/ensure-redis

test: install rabbitmq redis  ## run the whole test suite
	$(BIN)/python -m pytest

lint: install  ## ruff lint and format check, and the import layers (contracts in pyproject.toml)
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	$(BIN)/ruff check broker transports pools tests bench examples docs
	$(BIN)/ruff format --check broker transports pools tests bench examples docs
	$(BIN)/lint-imports

typecheck: install  ## mypy --strict on the three packages
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	$(BIN)/mypy

docs: install  ## build the Sphinx docs from scratch (-E); any warning or unresolved reference fails it
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	$(BIN)/sphinx-build -E -n -W --keep-going -q -b html docs docs/_build/html

bench: install rabbitmq redis  ## side-by-side benchmarks: bench/results.md and .png, and the README table from them
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench
	$(BIN)/python -m bench.readme

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .ruff_cache

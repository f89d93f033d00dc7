# The two commands of the README's quick start are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest lock bench clean

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kaitiaki demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

# Refresh both locks from requirements*.in (needs network access to PyPI).
lock:
	$(PYTHON) -m venv .lockvenv && .lockvenv/bin/pip install --quiet uv
	.lockvenv/bin/uv pip compile --quiet --python-version 3.11 --universal \
	  --generate-hashes requirements.in -o requirements.lock
	.lockvenv/bin/uv pip compile --quiet --python-version 3.11 --universal \
	  --generate-hashes requirements-dev.in -c requirements.lock -o requirements-dev.lock
	.lockvenv/bin/uv pip compile --quiet --python-version 3.11 --universal \
	  --generate-hashes requirements-bench.in -c requirements.lock -c requirements-dev.lock \
	  -o requirements-bench.lock
	rm -rf .lockvenv

# The gateway benchmark against nginx and nginx + ModSecurity/CRS (not a test).
bench:
	bench/run --scaleout bench/scaleout.toml

clean:
	rm -rf $(VENV) var

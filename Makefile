# entra-sync: `make test` and `make run` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install test lint format run demo emulator browser-trust-tools migrate benchmark clean

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

install: $(BIN)/.installed

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy directories identities config

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: install
	$(BIN)/python manage.py migrate --verbosity 0

run: migrate
	$(BIN)/python manage.py ensure_admin --url http://$(HOST):$(PORT)/admin/
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py runserver $(HOST):$(PORT)

# The demo's sign-in pages are HTTPS with a local CA: certutil (libnss3-tools) lets the demo
# add that CA to Chrome/Chromium's store so no certificate warning appears. Best effort.
browser-trust-tools:
	@command -v certutil >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  [ "$$(id -u)" = 0 ] && { apt-get install -y -qq libnss3-tools >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq libnss3-tools; } >/dev/null 2>&1; }; } || true

demo: migrate browser-trust-tools
	$(BIN)/python manage.py demo --port $(PORT)

emulator: install
	$(BIN)/python manage.py graph_emulator

benchmark: migrate
	$(BIN)/python manage.py benchmark_sync --users 10000 --groups 500

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

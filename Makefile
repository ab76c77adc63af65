# entra-sync: `make test` and `make run` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# With DEBUG off, entra-sync refuses to start without a secret key of its own (django-q2 runs
# any task signed with it). The local targets use a random one made once for this checkout
# (.secret_key, git-ignored, kept by `make clean`), unless SECRET_KEY is set.
KEYED := SECRET_KEY="$${SECRET_KEY:-$$(cat .secret_key)}"

.PHONY: install install-dev test lint format run demo stack emulator browser-tools migrate benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime only (requirements.txt): what production installs; enough for run, demo, emulator and
# benchmark. Tests, lint and format add requirements-dev.txt (which includes requirements.txt).
$(BIN)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: requirements.txt requirements-dev.txt $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

.secret_key:
	umask 077; $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@.new && mv $@.new $@

install-dev: $(BIN)/.installed-dev

test: install-dev browser-tools
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy directories identities config entra_emulator tests

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: install | .secret_key
	$(KEYED) $(BIN)/python manage.py migrate --verbosity 0

# runserver (DEBUG on unless set) and a qcluster for the scheduled and Sync Now syncs. `exec`
# hands make's signals to `serve`: Ctrl-C or SIGTERM stops both within seconds.
run: migrate
	$(KEYED) $(BIN)/python manage.py ensure_admin --url http://$(HOST):$(PORT)/admin/
	exec env $(KEYED) $(BIN)/python manage.py serve --web runserver --bind $(HOST):$(PORT)

# The production shape on one machine (README "Production deployment"): gunicorn and two
# qclusters against DATABASE_URL and REDIS_URL, with the deployment's own SECRET_KEY.
stack: install
	$(BIN)/python manage.py migrate --noinput --verbosity 0
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	exec $(BIN)/python manage.py serve --web gunicorn --bind $(HOST):$(PORT) --qclusters 2

# Browser tests drive Debian's Chromium, and the demo adds its local CA to Chrome/Chromium's
# store with certutil (libnss3-tools). Installed when apt-get can (root); tests that need them
# skip with the reason where they are truly absent.
BROWSER_PACKAGES := chromium chromium-driver libnss3-tools
browser-tools:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v certutil >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; } || \
	    echo "Could not install $(BROWSER_PACKAGES); browser tests will be skipped."; \
	  else echo "Install $(BROWSER_PACKAGES) for the browser tests and the demo's CA trust."; fi; \
	fi

demo: migrate browser-tools
	exec env $(KEYED) $(BIN)/python manage.py demo --port $(PORT)

emulator: install | .secret_key
	$(KEYED) $(BIN)/python manage.py graph_emulator

benchmark: migrate
	$(KEYED) $(BIN)/python manage.py benchmark_sync --users 10000 --groups 500

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles

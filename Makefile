# wheelfarm: `make up` starts a local farm, `make test` runs the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up down check test test-fast test-e2e lint bench venv browser crossbar bubblewrap

venv: $(VENV)/.installed

# The farm's own environment: Buildbot (pinned), the wheelfarm package, test tools.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The WAMP router that connects several masters (README: "Several masters"). It has
# its own venv: its dependencies are not the master's.
CROSSBAR_VENV ?= .crossbar-venv
crossbar: $(CROSSBAR_VENV)/.installed

$(CROSSBAR_VENV)/.installed: | venv
	$(BIN)/uv venv -q --python $(PYTHON) $(CROSSBAR_VENV)
	$(BIN)/uv pip install -q --python $(CROSSBAR_VENV)/bin/python crossbar==26.10.1
	touch $@

up: venv bubblewrap
	$(BIN)/wheelfarm up

down: venv
	$(BIN)/wheelfarm down

check: venv
	$(BIN)/wheelfarm check

lint: venv
	$(BIN)/ruff check master tests bench
	$(BIN)/ruff format --check master tests bench

# The browser test drives Debian's chromium (CI runs as root on Debian).
browser:
	command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
		|| (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# A Linux worker runs the package's own code in Debian's bubblewrap (README: "Isolation").
bubblewrap:
	[ "$$(uname)" != Linux ] || command -v bwrap >/dev/null \
		|| DEBIAN_FRONTEND=noninteractive apt-get install -y bubblewrap \
		|| (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y bubblewrap)

# The whole suite: lint, unit tests, then the end-to-end tests with real masters and workers.
test: venv crossbar lint browser bubblewrap
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -m "not e2e"

test-e2e: venv crossbar bubblewrap
	$(BIN)/pytest -m e2e

bench: venv
	$(BIN)/python bench/registry_scale.py
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/watcher.py

# wheelfarm: `make up` starts a local farm, `make test` runs the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y

.PHONY: up down check test test-fast test-e2e lint docs reference lock lock-export lock-check bench venv wheelhouse browser crossbar containers bubblewrap proxy

venv: $(VENV)/.installed

# The farm's own environment, exactly as locked: requirements.lock is exported from
# uv.lock (`make lock`) with every file's sha256, and pip installs it with --no-deps and
# --require-hashes, so tomorrow's install is today's. A new lock makes the venv anew.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The documentation site (mkdocs.yml, docs/) into site/, a warning failing it. The
# reference pages in docs/reference/ are made from the code by `make reference`
# (tests/test_docs.py fails when the committed ones differ).
docs: venv
	$(BIN)/mkdocs build --strict --quiet --site-dir site

reference: venv
	$(BIN)/python -m wheelfarm.cli.docs docs/reference

# Update the locks on purpose: the newest versions pyproject.toml allows, then the two
# exported files (the master's environment, and the tools a volunteer's worker installs),
# and the router's own lock.
lock: venv
	$(BIN)/uv lock --upgrade
	$(MAKE) lock-export
	$(BIN)/uv pip compile -q --upgrade --universal --python-version 3.11 --generate-hashes \
		-o requirements-crossbar.lock requirements-crossbar.in

lock-export:
	$(BIN)/uv export --quiet --no-header --frozen --no-emit-project --all-extras --all-groups -o requirements.lock
	$(BIN)/uv export --quiet --no-header --frozen --no-emit-project --only-group worker -o workers/requirements.txt

# CI: uv.lock still satisfies pyproject.toml, and the exported files are uv.lock's.
lock-check: venv
	$(BIN)/uv lock --locked
	$(BIN)/uv export --quiet --no-header --frozen --no-emit-project --all-extras --all-groups | diff -u requirements.lock -
	$(BIN)/uv export --quiet --no-header --frozen --no-emit-project --only-group worker | diff -u workers/requirements.txt -

# The unit tests' own package index (locked wheels on disk): they touch no network.
wheelhouse: $(VENV)/wheelhouse/.lock-copy

$(VENV)/wheelhouse/.lock-copy: $(VENV)/.installed
	$(BIN)/python tests/wheelhouse.py

# The WAMP router that connects several masters (docs/operators/several-masters.md). It has
# its own venv and its own lock: its dependencies are not the master's.
CROSSBAR_VENV ?= .crossbar-venv
crossbar: $(CROSSBAR_VENV)/.installed

$(CROSSBAR_VENV)/.installed: requirements-crossbar.lock | venv
	$(BIN)/uv venv -q --python $(PYTHON) $(CROSSBAR_VENV)
	$(BIN)/uv pip sync -q --require-hashes --python $(CROSSBAR_VENV)/bin/python requirements-crossbar.lock
	touch $@

up: venv bubblewrap
	$(BIN)/wheelfarm up

down: venv
	$(BIN)/wheelfarm down

check: venv
	$(BIN)/wheelfarm check

lint: venv
	$(BIN)/ruff check master tests bench workers
	$(BIN)/ruff format --check master tests bench workers
	$(BIN)/mypy
	$(BIN)/mypy --python-version 3.10 master/farmtool

# The browser test drives Debian's chromium (CI runs as root on Debian).
browser:
	command -v chromium >/dev/null || $(APT_INSTALL) chromium \
		|| (apt-get update && $(APT_INSTALL) chromium)

# The cluster test (tests/test_e2e_cluster.py) puts the recipe's proxy in front of its
# masters: deploy/nginx/wheelfarm.conf, run by Debian's nginx.
proxy:
	[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || $(APT_INSTALL) nginx-light \
		|| (apt-get update && $(APT_INSTALL) nginx-light)

# A Linux worker runs the package's own code in Debian's bubblewrap, and gives the one
# phase that needs a network (a Rust sdist's crates fetch) slirp4netns's user-mode one
# (docs/volunteers/isolation.md).
bubblewrap:
	[ "$$(uname)" != Linux ] || (command -v bwrap && command -v slirp4netns) >/dev/null \
		|| $(APT_INSTALL) bubblewrap slirp4netns \
		|| (apt-get update && $(APT_INSTALL) bubblewrap slirp4netns)

# Containers and emulation for Linux workers (docs/volunteers/containers-and-emulation.md): podman with runc
# (workers/podman/containers.conf), debootstrap to make images from Debian's packages,
# and QEMU user-mode emulation registered with binfmt_misc for linux-aarch64 on x86_64.
CONTAINER_TOOLS := podman runc debootstrap qemu-user-static binfmt-support
containers:
	[ "$$(uname)" != Linux ] || (command -v podman && command -v runc && command -v debootstrap \
		&& command -v qemu-aarch64-static) >/dev/null \
		|| $(APT_INSTALL) $(CONTAINER_TOOLS) || (apt-get update && $(APT_INSTALL) $(CONTAINER_TOOLS))
	[ "$$(uname)" != Linux ] || [ -e /proc/sys/fs/binfmt_misc/register ] \
		|| mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	[ "$$(uname)" != Linux ] || [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
		|| update-binfmts --enable qemu-aarch64

# The whole suite: lint, the docs, the lock, unit tests, then the end-to-end tests with real
# masters and workers.
test: venv wheelhouse crossbar lint docs lock-check browser bubblewrap containers proxy
	WHEELFARM_TOOLS_REQUIRED=1 $(BIN)/pytest --durations=25

test-fast: venv wheelhouse
	$(BIN)/pytest -m "not e2e"

test-e2e: venv wheelhouse crossbar bubblewrap containers proxy
	$(BIN)/pytest -m e2e

bench: venv
	$(BIN)/python bench/registry_scale.py
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/watcher.py
	$(BIN)/python bench/cascade.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/emulation.py
	$(BIN)/python bench/reproducible.py
	$(BIN)/python bench/history.py

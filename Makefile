# Herald — every target installs what it needs first and is safe to run twice.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test chaos lint bench clean install browser allocator node

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

# $(call apt,TARGET,CHECK,PACKAGES,WITHOUT): when the shell test CHECK fails, install
# the Debian PACKAGES with apt-get (root only); WITHOUT says what happens otherwise.
apt = if ! { $(2); } >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      $(3) >/dev/null) || echo "$(1): could not install $(3); $(4)"; \
	  else echo "$(1): not root or no apt-get; $(4)"; fi; \
	fi

# Headless Chromium and a CJK font for the browser test.
browser:
	@$(call apt,browser,[ -x /usr/bin/chromium ] && [ -d /usr/share/fonts/opentype/noto ],chromium fonts-noto-cjk,browser tests will skip outside CI)

# jemalloc for the private server: Valkey is built for it, the embedded binary uses
# libc malloc, and the server is markedly faster with jemalloc preloaded
# (streams/allocator.py).
# The check is the lookup the server launcher uses.
allocator: $(STAMP)
	@$(call apt,allocator,$(PY) -c "from herald.streams.allocator import find_jemalloc as f; raise SystemExit(f() is None)",libjemalloc2,the server runs on libc malloc)

# The Node.js producer of the protocol tests (tests/protocol/node): its locked packages
# from the npm registry, when npm is there (without it those tests skip, saying so).
NODE_DIR := tests/protocol/node
node:
	@if command -v npm >/dev/null 2>&1; then \
	  if [ ! -f $(NODE_DIR)/node_modules/.package-lock.json ] || \
	     [ $(NODE_DIR)/package-lock.json -nt $(NODE_DIR)/node_modules/.package-lock.json ]; then \
	    cd $(NODE_DIR) && npm ci --no-audit --no-fund --silent; fi; \
	else echo "node: npm not found; the Node producer's tests will skip"; fi

# pytest processes for make test (each starts its own servers); `make test TEST_WORKERS=0`
# runs in one process
TEST_WORKERS ?= auto

run: $(STAMP) allocator
	HERALD_DEV=$${HERALD_DEV:-true} $(VENV)/bin/herald run

test: $(STAMP) allocator browser node
	$(PY) -m pytest -q -n $(TEST_WORKERS)
	$(PY) -m tests.chaos.run --quick

# The chaos suite (tests/chaos): real processes, real faults, one line per scenario.
chaos: $(STAMP) allocator
	$(PY) -m tests.chaos.run

# mypy reads the installed layout (pyproject: scripts/ is `herald`, the rooms its
# subpackages) from a tree of links, rebuilt each time so new files are in it.
TYPECHECK := build/typecheck/herald

lint: $(STAMP)
	$(VENV)/bin/ruff check streams consumers api scripts tests herald_client
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	for f in scripts/*; do case $$f in *__pycache__) ;; *) ln -s $(CURDIR)/$$f $(TYPECHECK)/;; esac; done
	for d in streams consumers api; do ln -s $(CURDIR)/$$d $(TYPECHECK)/$$d; done
	$(VENV)/bin/mypy

bench: $(STAMP) allocator
	$(PY) scripts/bench_publish.py
	@for s in bench_project bench_api bench_live bench_delivery bench_protocol bench_channels; do \
	  if [ -f scripts/$$s.py ]; then $(PY) scripts/$$s.py || exit 1; fi; done

clean:
	rm -rf $(VENV) .herald .pytest_cache .mypy_cache .ruff_cache build *.egg-info $(NODE_DIR)/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

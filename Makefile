# Herald — every target installs what it needs first and is safe to run twice.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean install browser allocator

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

# Headless Chromium and a CJK font for the browser test (Debian packages).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/opentype/noto ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium fonts-noto-cjk >/dev/null) || echo "browser: could not install chromium"; \
	  else echo "browser: not root or no apt-get; browser tests will skip outside CI"; fi; \
	fi

# jemalloc for the private server: Valkey is built for it, the embedded binary uses
# libc malloc, and the server is markedly faster with jemalloc preloaded
# (streams/allocator.py). Debian package; without it the server runs on libc malloc.
allocator:
	@if ! ls /usr/lib/*/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2 >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      libjemalloc2 >/dev/null) || echo "allocator: could not install libjemalloc2"; \
	  else echo "allocator: not root or no apt-get; the server runs on libc malloc"; fi; \
	fi

run: $(STAMP) allocator
	HERALD_DEV=$${HERALD_DEV:-true} $(VENV)/bin/herald run

test: $(STAMP) allocator browser
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check streams consumers api scripts tests
	$(VENV)/bin/mypy

bench: $(STAMP) allocator
	$(PY) scripts/bench_publish.py
	@for s in bench_project bench_api bench_live bench_delivery; do \
	  if [ -f scripts/$$s.py ]; then $(PY) scripts/$$s.py || exit 1; fi; done

clean:
	rm -rf $(VENV) .herald .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

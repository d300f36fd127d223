# Two commands do all the setup on a fresh machine:
#   make demo   creates .venv, installs mlplab, trains and evaluates a network on MNIST
#   make test   creates .venv, installs mlplab with its test tools, runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlplab-installed
RUN ?= runs/demo

.PHONY: demo test venv bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@if $(VENV)/bin/mlplab data fetch mnist; then ds=mnist; else \
	  echo "MNIST could not be obtained: training on the offline 'digits' dataset instead"; ds=digits; fi; \
	rm -rf $(RUN); \
	$(VENV)/bin/mlplab train --config configs/demo.toml --dataset $$ds --out $(RUN)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf $(VENV) runs .pytest_cache

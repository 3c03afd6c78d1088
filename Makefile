# servelab: `make lab` to work through the labs, `make test` to check everything.
# Everything runs from .venv, built with pip from pyproject.toml (conda users: environment.yml).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.servelab-installed
PORT   ?= 8888
# Extra JupyterLab flags, e.g. LAB_ARGS=--no-browser on a headless machine.
LAB_ARGS ?=
# JupyterLab refuses to start as root unless told to; only pass the flag when we are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help setup lab labs test bench clean

help:
	@echo "make lab    set up .venv and open JupyterLab at labs/ (local backend, no Docker needed)"
	@echo "make test   set up .venv and run every check (unit, server, notebooks, browser)"
	@echo "make bench  speed comparisons, each side by side in one run, printed as ratios"
	@echo "make labs   regenerate labs/ from solutions/"
	@echo "make clean  remove .venv, caches and run results"
	@echo "make doctor    check Docker, kind, kubectl, memory and port 8501 for the real-cluster path"
	@echo "make cluster   create (or reuse) the kind cluster, build and load the image, install metrics-server"
	@echo "make deploy    apply the model server's Deployment, Service and HPA to it"
	@echo "make teardown  delete the kind cluster"

setup: $(STAMP)

# Re-running is instant: pip only runs again when pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "servelab needs Python 3.10 or newer; found " + sys.version.split()[0] + ". Run: make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	@touch $@

lab: setup
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(PORT) --notebook-dir=labs $(ROOT_FLAG) $(LAB_ARGS)

labs: setup
	$(BIN)/python -m servelab.labgen solutions labs

# Lint, import layers and size limits first (tests/test_lint.py): a broken layer fails in seconds, not after the labs.
test: setup
	$(BIN)/python -m pytest tests/test_lint.py
	$(BIN)/python -m pytest --ignore=tests/test_lint.py --durations=20

# The benches cross-check against wrk and hey; as root on Debian/Ubuntu they are installed here.
bench: setup
	@for tool in wrk hey; do command -v $$tool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then apt-get install -y -qq $$tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $$tool >/dev/null; }; \
	  else echo "bench: $$tool is missing; install it (apt-get install $$tool / brew install $$tool) for its comparison"; fi; }; done
	$(BIN)/python -m bench $(AREAS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# The real-cluster path (kind): doctor, cluster, deploy, teardown.
include cluster/cluster.mk

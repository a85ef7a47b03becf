# Two commands: `make run` checks the built-in catalog, `make test` runs the test suite.
# Both create (or refresh, when pyproject.toml changes) the virtual environment in .venv.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# torch is an optional extra for users; this pin installs the CPU build from local disk here.
TORCH := torch==2.13.0

.PHONY: run test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[torch,test,report]' '$(TORCH)'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/derive check --all

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2   # both cores (pytest-xdist, in the test extra)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis

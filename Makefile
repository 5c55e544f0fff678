# kgrec — two commands for a fresh machine:
#   make demo   set everything up, start Neo4j, load the synthetic world, print where to look
#   make test   set everything up, lint, and run the whole test suite against a real Neo4j
# Prerequisites: Python 3.11, JDK 17+ and Maven (see README).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test setup neo4j-jars lint clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kgrec needs Python 3.11+; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "Installing kgrec with its dependencies (PyTorch, PyTorch Geometric, FAISS, FastAPI, the test and bench tools) into $(VENV): the first run downloads several GB and takes minutes, quietly."
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install kgrec with its dependencies

neo4j-jars: $(STAMP)  ## resolve the Neo4j, APOC and Browser jars from Maven Central (once)
	$(BIN)/kgrec neo4j jars

demo: setup  ## start Neo4j, load the synthetic world, print the summary and the Browser address
	$(BIN)/kgrec demo

lint: setup  ## ruff (lint and format check) and the import-layer contracts of pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

test: setup lint  ## lint, then unit, integration (real Neo4j, started by the tests) and API tests
	$(BIN)/python -m pytest

clean:  ## remove the virtualenv and local state (keeps the jar cache in ~/.cache/kgrec)
	-$(BIN)/kgrec neo4j stop
	rm -rf $(VENV) .kgrec

# The map of the project: `make help` lists every target.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/default.yaml
RAW := data/raw/train_catvnoncat.h5 data/raw/test_catvnoncat.h5
# where fetch gets the course files: an http(s):// or file:// URL or a folder (default: the public mirror)
DATA_FROM ?=
FETCH := $(PY) -m pipeline fetch $(if $(DATA_FROM),--from "$(DATA_FROM)")

.PHONY: help venv data train evaluate predict test bench clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP) ## create .venv and install the project (only when pyproject.toml changed)

$(RAW) &: | $(STAMP)
	$(FETCH)

data: $(RAW) ## fetch the course's HDF5 files into data/raw (DATA_FROM=url-or-folder to choose the source)

train: $(RAW) | $(STAMP) ## train the lesson's neuron (CONFIG=configs/default.yaml) into a new run folder
	$(PY) -m pipeline train --config $(CONFIG)

evaluate: $(RAW) | $(STAMP) ## re-evaluate the latest run (RUN=runs/... for another)
	$(PY) -m pipeline evaluate $(if $(RUN),--run "$(RUN)")

test: | $(STAMP) ## run the test suite (fetches the data first; real-data tests skip without it)
	-$(FETCH)
	$(PY) -m pytest

bench: $(RAW) | $(STAMP) ## time the seed's loop, the lesson's loop and the solvers; scaling to 100k images (minutes)
	$(PY) scripts/bench.py --data data/raw

clean: ## remove runs/ and the virtual environment (data/ is kept)
	rm -rf runs $(VENV)

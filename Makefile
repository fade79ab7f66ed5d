# The map of the project: `make help` lists every target.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/default.yaml
# the sweep `make sweep` runs, and how many of its runs train at once
SWEEP_CONFIG ?= configs/lr_sweep.yaml
JOBS ?= 1
# BLAS threads of `make bench` (docs/speed.md: on a shared machine one thread per process is fastest)
BENCH_THREADS ?= 1
RAW := data/raw/train_catvnoncat.h5 data/raw/test_catvnoncat.h5
# where fetch gets the course files: an http(s):// or file:// URL or a folder (default: public mirrors, in turn)
DATA_FROM ?=
FETCH := $(PY) -m pipeline fetch $(if $(DATA_FROM),--from "$(DATA_FROM)")
# the course files a config needs: none for a folder config (data.source: folder, or based on a folder_ config),
# which trains on your photos and must not wait for a download (CONFIG: a file, or a name in configs/)
course_data = $(if $(shell grep -slE '^ *source: *folder|^base: *folder' $(1) configs/$(1).yaml),,$(RAW))

.PHONY: help venv data demo-photos prepare audit train evaluate predict report serve sweep bench test guide gradcheck clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP) ## create .venv and install the project (only when pyproject.toml changed)

$(RAW) &: | $(STAMP)
	$(FETCH)

data: $(RAW) ## fetch the course's HDF5 files into data/raw (DATA_FROM=url-or-folder to choose the source)

demo-photos: | $(STAMP) ## write generated demo photos into DIR (default data/photos; it must not exist)
	$(PY) -m pipeline demo-photos "$(or $(DIR),data/photos)"

prepare: CONFIG = configs/folder_example.yaml
prepare: | $(STAMP) ## image folders -> data/processed/<name>/*.h5 (CONFIG=configs/folder_example.yaml)
	$(PY) -m pipeline prepare --config $(CONFIG)

audit: | $(STAMP) ## duplicates, train/test leaks and class balance of CONFIG's data (course: make data first)
	$(PY) -m pipeline audit --config $(CONFIG)

train: $(call course_data,$(CONFIG)) | $(STAMP) ## train the lesson's neuron (CONFIG=configs/default.yaml) into a new run folder
	$(PY) -m pipeline train --config $(CONFIG)

evaluate: $(RAW) | $(STAMP) ## re-evaluate the latest run (RUN=runs/... for another)
	$(PY) -m pipeline evaluate $(if $(RUN),--run "$(RUN)")

predict: | $(STAMP) ## classify your own images with the latest run (IMG=photo.jpg or a folder; RUN=runs/... for another)
	$(if $(IMG),,$(error IMG is not set: make predict IMG=path/to/photo.jpg))
	$(PY) -m pipeline predict $(if $(RUN),--model "$(RUN)") "$(IMG)"

report: | $(STAMP) ## rebuild report.html and the pictures of the latest run (RUN=runs/... for another run or a sweep)
	$(PY) -m pipeline report $(if $(RUN),"$(RUN)")

serve: | $(STAMP) ## a local page to drop a photo on, with the latest run (RUN=runs/... for another; PORT=8000)
	$(PY) -m pipeline serve $(if $(RUN),--model "$(RUN)") --port $(or $(PORT),8000)


sweep: $(call course_data,$(SWEEP_CONFIG)) | $(STAMP) ## the lesson's learning-rate comparison (SWEEP_CONFIG=..., JOBS=N parallel runs)
	$(PY) -m pipeline sweep --config $(SWEEP_CONFIG) --jobs $(JOBS)

test: | $(STAMP) ## run the test suite (fetches the data first; real-data tests skip without it)
	-$(FETCH)
	$(PY) -m pytest

gradcheck: $(RAW) | $(STAMP) ## compare propagate's gradients with finite differences on the first training images
	$(PY) scripts/gradient_check.py --data-dir data/raw

guide: $(RAW) | $(STAMP) ## run the examples of docs/guide.md and check its code citations (tests/test_guide.py)
	$(PY) -m pytest -q tests/test_guide.py

bench: $(RAW) | $(STAMP) ## time the solvers, in-memory vs streaming vs Dask up to 100k images (minutes; BENCH_THREADS=N)
	$(PY) scripts/bench.py --data data/raw --threads $(BENCH_THREADS)

clean: ## remove every generated file: runs/, data/processed/, .venv, caches, build files (data/raw and your photos are kept)
	rm -rf runs $(VENV) .pytest_cache build dist *.egg-info
	find data/processed -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
	find . -path ./data -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

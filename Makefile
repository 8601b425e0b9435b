# pharmload: `make demo` loads a synthetic scrape into the embedded database; `make test` runs
# lint and the whole suite against a real PostgreSQL. Both install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
STATES_DIR ?=
# IMPORT_TAG: the old PharmChecker Makefile's name for the tag
IMPORT_TAG ?=
TAG ?= $(IMPORT_TAG)
DEMO_DIR ?= demo

.PHONY: install lint test demo load-embedded load-local load-supabase import_scrape_states import_scrape_states_local \
	bench bench-full bench-supabase clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check loader tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

demo: install
	rm -rf $(DEMO_DIR)/scrape
	$(BIN)/python -m benchmarks.corpus $(DEMO_DIR)/scrape --files 515 --image-bytes 20000
	$(BIN)/pharmload load --states-dir $(DEMO_DIR)/scrape --tag demo-scrape \
		--rejects $(DEMO_DIR)/rejects.jsonl --report-json $(DEMO_DIR)/report.json || [ $$? -eq 1 ]
	$(BIN)/pharmload status

load-embedded: install
	@test -n "$(STATES_DIR)" -a -n "$(TAG)" || { echo "usage: make load-embedded STATES_DIR=... TAG=..."; exit 2; }
	$(BIN)/pharmload load --backend embedded --states-dir "$(STATES_DIR)" --tag "$(TAG)"

load-local: install
	@test -n "$(STATES_DIR)" -a -n "$(TAG)" || { echo "usage: make load-local STATES_DIR=... TAG=..."; exit 2; }
	$(BIN)/pharmload load --backend postgresql --states-dir "$(STATES_DIR)" --tag "$(TAG)"

load-supabase: install
	@test -n "$(STATES_DIR)" -a -n "$(TAG)" || { echo "usage: make load-supabase STATES_DIR=... TAG=..."; exit 2; }
	$(BIN)/pharmload load --backend supabase --states-dir "$(STATES_DIR)" --tag "$(TAG)"

# The old PharmChecker Makefile's targets, for scripts and muscle memory (IMPORT_TAG works as TAG).
import_scrape_states: load-supabase
import_scrape_states_local: load-local

# Benchmarks (benchmarks/README.md), on the realistic corpus (each pharmacy+state searched about once,
# ~1.2 rows per file), judged against issue 16's targets. Raw results go to benchmarks/results/raw/
# (ignored by git); UPDATE_RESULTS=1 also updates benchmarks/RESULTS.md and its plots.
BENCH_FLAGS = --profile realistic $(if $(UPDATE_RESULTS),--update-results)

# Quick profile (~2-5 min on 2 cores): 515 files @100 KB and 20,000 @20 KB, 3 runs after a warm-up,
# every contender; the old importer's way only at the smallest size (--skip-slow).
bench: install
	$(BIN)/python -m benchmarks.harness $(BENCH_FLAGS) --sizes 515:100000,20000:20000 --runs 3 --skip-slow

# Full profile (an hour or more, ~10 GB of corpora in /var/tmp): adds 100,000 files @2 KB, 5 runs,
# the old importer's way at every size, and a first load of 1,000,000 files @2 KB: its whole process
# tree's peak memory (target <= 1 GB; exit 3 if missed) and its time against the 100,000-file load's.
bench-full: install
	$(BIN)/python -m benchmarks.harness $(BENCH_FLAGS) --sizes 515:100000,20000:20000,100000:2000 --runs 5 \
		--memory-check 1000000:2000

# Supabase uploads (issue 17): a first load of 2,000 screenshots @100 KB into the real Storage server
# (../shared/supabase-storage) through our fault proxy with 0/20/80 ms added per request, the loader
# before (main, 10 fixed) and now (adaptive, up to 64); skipped with a message where the kit is absent.
bench-supabase: install
	$(BIN)/python -m benchmarks.uploads --sizes 2000:100000 --latencies 0,20,80 --runs 3 \
		--contenders main@10,this@64 $(if $(UPDATE_RESULTS),--update-results)

clean:
	rm -rf $(DEMO_DIR) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

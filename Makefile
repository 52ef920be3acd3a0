# Two commands for a fresh clone: `make demo` and `make test`.
# The environment is a local virtualenv (.venv) built from PyPI. CPU machines get
# torch $(TORCH_SPEC); GPU users: see README ("GPU / CUDA") or environment.yml.

PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: env demo report test lint test-unit test-workflow test-slurm clean

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

## demo: run the whole workflow on the embedded demo data, then build the HTML report
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "Artifacts under results/; open results/report.html"

report: $(STAMP)
	$(BIN)/snakemake --report results/report.html

## test: lint + formatting checks + the whole pytest suite (unit, CLI, workflow)
test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slurm and not gpu"

## test-unit: the pytest suite without the tests that run snakemake (`workflow` marker): fast
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not workflow and not slurm and not gpu"

## test-workflow: only the tests that run snakemake (dry runs, stubbed and end-to-end runs)
test-workflow: $(STAMP)
	$(BIN)/python -m pytest -m "workflow and not slurm and not gpu"

lint: $(STAMP)
	$(BIN)/ruff check vae tests workflow/scripts workflow/lib
	$(BIN)/ruff format --check vae tests workflow/scripts workflow/lib
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint --cores 1

## test-slurm: start a one-node SLURM cluster, run the workflow through the cluster profile
test-slurm: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash .ci/test-slurm.sh

clean:
	rm -rf results logs resources benchmarks/out .snakemake

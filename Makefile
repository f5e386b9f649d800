# Two commands on a fresh machine: `make demo` and `make test`. Each target is idempotent and
# quick when its work is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := build/demo

.PHONY: setup system docker venv localstack base-image stack-images slurm demo test lint unit integration bench clean

setup: system docker venv localstack base-image  ## everything a fresh machine needs

system:
	scripts/ensure-system-packages.sh

docker: system
	scripts/ensure-docker.sh

venv: $(BIN)/.installed
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

localstack: localstack/.venv/.installed
localstack/.venv/.installed: localstack/requirements.txt localstack/setup.sh
	localstack/setup.sh

base-image: docker
	images/base/build.sh

# The stack in containers (`ncaas-dev up --containers`): LocalStack's and the dispatcher's images,
# built offline from ncaas/base; skipped when unchanged. The tests start it; the demo does not.
stack-images: venv localstack base-image
	$(BIN)/python -m ncaas_dev.local.images

slurm: system  ## a real single-node SLURM cluster for --launcher slurm (not needed by demo)
	scripts/ensure-slurm.sh

demo: setup  ## run the bundled example end to end
	@mkdir -p $(DEMO)
	$(BIN)/python blueprints/spike-detect/generate_data.py --out $(DEMO)/rec.bin --truth $(DEMO)/truth.csv
	$(BIN)/ncaas-dev run blueprints/spike-detect --data $(DEMO)/rec.bin \
		--config blueprints/spike-detect/params.yaml --out $(DEMO)/results

lint: venv
	$(BIN)/ruff check ncaas_dev tests benchmarks
	$(BIN)/ruff format --check ncaas_dev tests benchmarks
	$(BIN)/mypy

test: setup stack-images slurm lint  ## lint, types, unit and integration tests against real Docker + LocalStack
	scripts/ensure-test-packages.sh  # chromium for the web client's browser tests
	$(BIN)/pytest

bench: setup  ## the benchmark tables in docs/benchmarks.md
	$(BIN)/python benchmarks/bench_run.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_admission.py

clean:
	-$(BIN)/ncaas-dev down
	rm -rf build

# The one task runner. `make demo` and `make test` set everything up from nothing (as root on Debian/Ubuntu).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SETUP_HASH := $(shell cat pyproject.toml scripts/system-packages.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.stamp-$(SETUP_HASH)
PYTEST := $(BIN)/python -m pytest
TIMED := scripts/timed.sh

.PHONY: setup demo test lint unit lab molecule test-selinux redteam selinux-image bench clean lab-down

setup: $(STAMP)

$(STAMP):
	scripts/install-system-packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.stamp-*
	touch $@

demo: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory lab
	$(MAKE) --no-print-directory molecule
	$(MAKE) --no-print-directory test-selinux
	$(MAKE) --no-print-directory redteam

lint: setup
	@$(TIMED) lint bash -c 'set -e; \
	  $(BIN)/ruff check . ; \
	  $(BIN)/ruff format --check . ; \
	  $(BIN)/mypy ; \
	  $(BIN)/lint-imports --no-cache ; \
	  $(BIN)/yamllint -s . ; \
	  $(BIN)/ansible-lint -q'

# Two pytest-xdist workers (the CI machine has 2 cores). Lab tests go a module per worker at a time
# (module fleets are made once), longest modules first (tests/lab/conftest.py); each worker brings up
# its own session lab and keeps its own store.
WORKERS ?= 2

unit: setup
	@$(TIMED) unit $(PYTEST) tests/unit -m "not lab" -n $(WORKERS) --durations=15

lab: setup
	@$(TIMED) lab $(PYTEST) tests/lab -m lab -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=40

# Every Molecule scenario (molecule/*/molecule.yml) on lab hosts; shared settings in .config/molecule/config.yml.
molecule: setup
	@$(TIMED) molecule env PATH="$(CURDIR)/$(BIN):$$PATH" NO_COLOR=1 $(BIN)/molecule test --all

# The real SELinux guest under qemu (builds and caches the image the first time, about 5 minutes).
test-selinux: setup
	@$(TIMED) test-selinux $(PYTEST) tests/selinux -m selinux -rP

# The red-team exercises (docs/redteam.md): every available scenario must pass; the report is kept.
# Scenarios needing hosts bring up a lab instance of their own (root) and tear it down.
REDTEAM_REPORT ?= redteam-report.md
redteam: setup
	@$(TIMED) redteam $(BIN)/patchbrain redteam run --own-lab-name rt$$$$ --report $(REDTEAM_REPORT)

selinux-image: setup
	@$(TIMED) selinux-image $(BIN)/python scripts/selinux-vm.py build

bench: setup
	@$(TIMED) bench bash -c 'for b in bench/bench_*.py; do $(BIN)/python "$$b" || exit 1; done'

lab-down:
	-$(BIN)/patchbrain lab down --all

clean: lab-down
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache

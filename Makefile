# The two README commands: `make tiny` and `make test`. Each (re)builds .venv from
# env/lock-cpu.txt when the lock or pyproject.toml changed, and is a no-op otherwise.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.repro-lock-stamp
PIP := $(VENV)/bin/python -m pip
export HF_HUB_OFFLINE ?= 1
export TRL_EXPERIMENTAL_SILENCE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv tiny test test-fast lint lock clean

venv: $(STAMP)

$(STAMP): env/lock-cpu.txt pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --no-deps -r env/lock-cpu.txt
	$(PIP) install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# The tiny end-to-end reproduction on a CPU: train on ZeRO-3, generate, judge, score, compare.
tiny: $(STAMP)
	$(VENV)/bin/repro env check
	$(VENV)/bin/repro run tiny --method simpo
	$(VENV)/bin/repro run tiny --method dpo
	$(VENV)/bin/repro compare results --only-reproduced --plot results/compare-tiny.png

test: $(STAMP)
	$(VENV)/bin/ruff check repro tests benchmarks
	$(VENV)/bin/python -m pytest -q

# The edit loop: parity oracles and unit tests, without the end-to-end tier (pytest -m e2e).
test-fast: $(STAMP)
	$(VENV)/bin/ruff check repro tests benchmarks
	$(VENV)/bin/python -m pytest -q -m "not e2e"

lint: $(STAMP)
	$(VENV)/bin/ruff check repro tests benchmarks
	$(VENV)/bin/ruff format --check repro tests

# Re-resolve env/requirements.in into a fresh environment and write the lock.
lock:
	PYTHON=$(PYTHON) env/make-lock.sh

clean:
	rm -rf $(VENV)

# The two README commands: `make tiny` and `make test`. Each (re)builds .venv from
# env/lock-cpu.txt when the lock, pyproject.toml or the installer changed; a no-op otherwise.
# The lock is installed by uv (pinned with hashes in env/uv.txt, installed into .uv/) in
# hash-checking mode: a file whose sha256 is not the lock's is refused.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.repro-lock-stamp
UV := .uv/bin/uv
LOCKS := $(PYTHON) env/locks.py
export HF_HUB_OFFLINE ?= 1
export TRL_EXPERIMENTAL_SILENCE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv uv tiny smol test test-fast lint lock clean

venv: $(STAMP)

uv: $(UV)

$(UV): env/uv.txt
	@test -x .uv/bin/python || $(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r env/uv.txt
	@touch $(UV)

$(STAMP): env/lock-cpu.txt pyproject.toml env/locks.py | $(UV)
	$(LOCKS) install --lock env/lock-cpu.txt --venv $(VENV) --editable
	@touch $(STAMP)

# The tiny end-to-end reproduction on a CPU: train on ZeRO-3, generate, judge, score, compare.
tiny: $(STAMP)
	$(VENV)/bin/repro env check
	$(VENV)/bin/repro run tiny --method simpo
	$(VENV)/bin/repro run tiny --method dpo
	$(VENV)/bin/repro compare results --plot results/compare-tiny.png

# A real model on a CPU: SmolLM2-135M-Instruct trained (SimPO and DPO), generated with vLLM,
# judged by itself served with `repro judge serve`, compared with the smol band (scripts/smol.sh).
smol: $(STAMP)
	$(VENV)/bin/repro env check
	scripts/smol.sh

# Everything CI runs, in one pytest run: the unit tests and parity oracles, the end-to-end tier
# and the lock re-resolution, two test files side by side (--dist loadfile: a file's module
# fixtures, the SLURM cluster among them, stay on one worker; the tiny runs they share are
# trained once for both, tests/builds.py). The slowest files start first (tests/slowest_files.csv)
# and the unit tests' short files fill the cores the end-to-end tests leave waiting on their
# processes. It prints the 25 slowest tests.
test: $(STAMP)
	$(VENV)/bin/ruff check repro tests perf
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=25

# The edit loop: parity oracles and unit tests on both cores, without the end-to-end tier
# (pytest -m e2e) and the registry re-resolution of the locks (pytest -m network).
test-fast: $(STAMP)
	$(VENV)/bin/ruff check repro tests perf
	$(VENV)/bin/python -m pytest -q -n 2 -m "not e2e and not network"

lint: $(STAMP)
	$(VENV)/bin/ruff check repro tests perf
	$(VENV)/bin/ruff format --check repro tests

# Re-resolve env/requirements.in and env/requirements-gpu.in into env/lock-cpu.txt and
# env/lock-gpu.txt (committed pins are kept where they still fit; UPGRADE=1 takes the newest).
lock: $(UV)
	$(LOCKS) lock $(if $(UPGRADE),--upgrade)

clean:
	rm -rf $(VENV) .uv

# Two entry points (see README): `make sandbox` and `make test`. Both install what they need first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: deps sandbox test venv lint docs clean-sandbox wheel-check

# The system packages (testbed/system-packages.txt, the one list): silent when all are there; as
# root it installs the missing ones, otherwise it names the command to run and stops (exit 2).
deps:
	@sh testbed/install-deps.sh

# compat: a plain path in a .pth file, so no import hook runs at every start of a task.
$(BIN)/inv: pyproject.toml | deps
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[sandbox,test]' --config-settings editable_mode=compat
	touch $@

venv: $(BIN)/inv

# The main job end to end on the local sandbox: `fab deploy` creates the VM through the local
# Compute API (which boots a sandbox host as the VM), then runs every host section on it.
sandbox: deps venv secrets.env
	$(BIN)/fab deploy

# Throwaway secrets for the sandbox only (never used on a real project).
secrets.env:
	umask 077; $(BIN)/python -c 'import secrets; print(f"VLLM_API_KEY=sandbox-{secrets.token_hex(16)}\nOCR_API=sandbox-{secrets.token_hex(8)}\nBACKEND_INTERNAL_TOKEN=sandbox-{secrets.token_hex(8)}")' > $@

# Parallel (pytest-xdist): most test time is waiting on booting hosts and slow-starting stand-ins, so
# more workers than cores pays; each module (or group sharing one deployed host) stays on one worker, and
# workers take the groups in the order tests/conftest.py puts them (the slowest first), not by test count.
TEST_WORKERS ?= 5

test: deps venv
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# The package as a user gets it: a wheel in a fresh venv runs the sandbox and a deploy (root).
wheel-check: deps venv
	$(BIN)/pytest -q tests/integration/test_wheel.py

clean-sandbox: venv
	$(BIN)/inv sandbox.down
	rm -f .l4-runbook/state.json

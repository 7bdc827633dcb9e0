# Two entry points (see README): `make sandbox` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: sandbox test venv lint docs clean-sandbox

$(BIN)/inv: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/inv

# The main job end to end on the local sandbox: `fab deploy` creates the VM through the local
# Compute API (which boots a sandbox host as the VM), then runs every host section on it.
sandbox: venv secrets.env
	$(BIN)/fab deploy

# Throwaway secrets for the sandbox only (never used on a real project).
secrets.env:
	umask 077; $(BIN)/python -c 'import secrets; print(f"VLLM_API_KEY=sandbox-{secrets.token_hex(16)}\nOCR_API=sandbox-{secrets.token_hex(8)}\nBACKEND_INTERNAL_TOKEN=sandbox-{secrets.token_hex(8)}")' > $@

test: venv
	$(BIN)/ruff check .
	$(BIN)/pytest -q

clean-sandbox: venv
	$(BIN)/inv sandbox.down
	rm -f .l4-runbook/state.json

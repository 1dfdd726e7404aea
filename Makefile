# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: demo test chaos setup system-deps lint clean frontend frontend-test

demo: setup system-deps frontend
	$(PY) -m scripts.demo $(ARGS)

test: setup system-deps frontend-test
	VENV=$(VENV) scripts/run-tests.sh

# The chaos suite alone (tests/chaos, also part of `make test`): the real stack under faults,
# one scenario at a time, each printing its counts, a table at the end. About 7 minutes.
chaos: setup system-deps
	$(PY) -m pytest -m chaos tests/chaos -p no:randomly -q -s $(ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[api,app,dev]'
	touch $@

# The browser app (frontend/, an npm workspace): npm ci when the lock file changed, then build
# the package frontend/packages/realtime (@infinitescribe/realtime) and the app into
# frontend/dist, which the API serves at /.
frontend: frontend/node_modules/.installed
	cd frontend && npm run build

frontend/node_modules/.installed: frontend/package-lock.json frontend/packages/realtime/package.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

frontend-test: frontend
	cd frontend && npm test

system-deps:
	scripts/install-system-deps.sh

# ruff (rules and format), import-linter (the boundaries) and mypy --strict: scripts/lint.sh,
# which `make test` runs first too.
lint: setup
	VENV=$(VENV) scripts/lint.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache frontend/node_modules frontend/dist frontend/packages/*/dist test-artifacts

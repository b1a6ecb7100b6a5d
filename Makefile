# dpi: two commands on a fresh machine with Python 3.11.
#   make run   install, start embedded PostgreSQL/Redis if needed, migrate, seed demo data, serve web + worker + beat
#   make test  install and run every test against real PostgreSQL and Redis
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint check clean stop audit-deps

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	touch $(STAMP)

run: install
	$(BIN)/python -m dpi.launcher

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.run_all

lint: install
	$(BIN)/ruff check .

check: install
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py check

# Known vulnerabilities in the pinned packages (pip-audit in its own .venv-audit); see docs/operations.md.
audit-deps:
	$(PYTHON) .ci/audit_deps.py requirements.lock

stop: install
	$(BIN)/python -c "from dpi import embedded; embedded.redis_stop(); embedded.postgres_stop()"

clean:
	rm -rf $(VENV) $(VENV)-audit var test-artifacts

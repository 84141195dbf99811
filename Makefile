# The two commands of the README (`make run PORT=5001` serves on another port). Both set up .venv first (again only when a lock file changes):
# `run` from requirements.txt (the app), `test` from requirements-test.txt (the app and its test
# tools). Both lock files pin every package with its hashes; they are made from pyproject.toml by
# `make lock`.
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
PORT ?= 5000
PIP_TOOLS := pip-tools==7.7.0
COMPILE := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --extra mysql --extra redis --extra standalone

.PHONY: run test bench setup lock migration clean

setup: $(VENV)/.installed-app

$(VENV)/.created:
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed-app: requirements.txt $(VENV)/.created
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt $(VENV)/.created
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-test.txt
	touch $@

run: $(VENV)/.installed-app
	$(FLASK) opmail init-db
	$(FLASK) opmail first-admin --port $(PORT)
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Seeds throwaway databases (SQLite 100k accounts, MariaDB 1M when OPMAIL_BENCH_MYSQL_URL is set),
# prints a table and writes bench/results.json. Takes a few minutes; see bench/README.md.
bench: $(VENV)/.installed-app
	$(BIN)/python -m bench.bench

# After changing a dependency in pyproject.toml: new lock files, keeping every other pin.
lock: $(VENV)/.created
	$(BIN)/python -m pip install --quiet "$(PIP_TOOLS)"
	$(COMPILE) --output-file requirements.txt pyproject.toml
	$(COMPILE) --extra test --constraint requirements.txt --output-file requirements-test.txt pyproject.toml

# A draft revision (opmail/migrations/versions/) for what models.py has and the revisions do not
# make yet: `make migration m="admins: last_password_change"`. See docs/migrations.md.
migration: $(VENV)/.installed-app
	rm -f $(VENV)/migration-draft.db
	$(BIN)/alembic -x url=sqlite:///$(VENV)/migration-draft.db upgrade head
	$(BIN)/alembic -x url=sqlite:///$(VENV)/migration-draft.db revision --autogenerate -m "$(m)"

clean:
	rm -rf $(VENV) .pytest_cache

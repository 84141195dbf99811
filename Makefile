# The two commands of the README. Both set up .venv first (again only when requirements change).
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app

.PHONY: run test bench setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

run: setup
	$(FLASK) opmail init-db
	$(FLASK) opmail first-admin
	$(FLASK) run --host 127.0.0.1 --port 5000

test: setup
	$(BIN)/python -m pytest

# Seeds throwaway databases (SQLite 100k accounts, MariaDB 1M when OPMAIL_BENCH_MYSQL_URL is set),
# prints a table and writes bench/results.json. Takes a few minutes; see bench/README.md.
bench: setup
	$(BIN)/python -m bench.bench

clean:
	rm -rf $(VENV) .pytest_cache

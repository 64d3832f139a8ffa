# The two commands a new user needs: `make run` and `make test`. Both install what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install run superuser test lock clean

install: $(STAMP)

# Reinstall only when a lock file or pyproject.toml changed: a second `make install` is instant.
$(STAMP): requirements/dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "octoprovider needs Python 3.11: set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/dev.lock
	touch $(STAMP)

# exec, so that make is bin/run-dev's parent: it stops the server and the reconciler once make is gone.
run: install
	PORT=$(PORT) exec bin/run-dev

# The first admin user of `make run`'s database (DEBUG as `make run` has it). With
# DJANGO_SUPERUSER_USERNAME, _EMAIL and _PASSWORD set, it asks nothing.
superuser: install
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py createsuperuser $(if $(DJANGO_SUPERUSER_PASSWORD),--noinput)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Regenerate the pinned, hashed lock files after changing pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --generate-hashes --strip-extras --allow-unsafe -o requirements/base.lock pyproject.toml
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --generate-hashes --strip-extras --allow-unsafe --extra dev -o requirements/dev.lock pyproject.toml

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache

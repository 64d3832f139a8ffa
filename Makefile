# The two commands a new user needs: `make run` and `make test`. Both install what they need.
# PYTHON picks the interpreter (3.11, 3.12 or 3.13): `make test PYTHON=python3.13`. Each version gets
# a virtualenv of its own (.venv for the default python3, .venv-3.13 for PYTHON=python3.13), so that
# switching never mixes packages built for another version.
PYTHON ?= python3
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(origin PYTHON),file)
VENV ?= .venv
else
VENV ?= .venv-$(PYTHON_VERSION)
endif
BIN := $(VENV)/bin
PORT ?= 8000
# Named after the version: a virtualenv whose Python changed under it (an upgraded python3) is checked again.
STAMP := $(VENV)/.installed-$(PYTHON_VERSION)

.PHONY: install run superuser test lock clean

install: $(STAMP)

# Reinstall only when a lock file or pyproject.toml changed: a second `make install` is instant. A
# virtualenv of another Python version (python3 upgraded under it) is made anew.
$(STAMP): requirements/dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null || \
		{ echo "octoprovider needs Python 3.11 or newer: set PYTHON=python3.12 (or a path)"; exit 1; }
	@test ! -x $(BIN)/python || $(BIN)/python -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != "$(PYTHON_VERSION)")' || \
		{ echo "$(VENV) was made with another Python version: making it anew"; rm -rf $(VENV); }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/python -m pip check --disable-pip-version-check
	touch $(STAMP)

# exec, so that make is bin/run-dev's parent: it stops the server and the reconciler once make is gone.
# An HCLOUD_TOKEN given on make's command line (`make run HCLOUD_TOKEN=…`) is this run's choice; one
# only found in the environment is not used unless OCTOPROVIDER_REAL_HETZNER=1 (bin/run-dev).
run: install
	@PORT=$(PORT) VENV=$(VENV) $(if $(filter command line,$(origin HCLOUD_TOKEN)),HCLOUD_TOKEN_GIVEN=1) exec bin/run-dev

# The first admin user of `make run`'s database (DEBUG as `make run` has it). With
# DJANGO_SUPERUSER_USERNAME, _EMAIL and _PASSWORD set, it asks nothing.
superuser: install
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py createsuperuser $(if $(DJANGO_SUPERUSER_PASSWORD),--noinput)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Regenerate the pinned, hashed lock files after changing pyproject.toml. One lock serves 3.11 to
# 3.13: every pinned release has wheels (or a pure-Python one) for each, and .ci/run installs it on
# all three. Resolve with the oldest (`make lock PYTHON=python3.11`): what only 3.11 needs is then
# pinned too, and harmless on the newer ones.
lock:
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --generate-hashes --strip-extras --allow-unsafe -o requirements/base.lock pyproject.toml
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --generate-hashes --strip-extras --allow-unsafe --extra dev -o requirements/dev.lock pyproject.toml

clean:
	rm -rf .venv .venv-3.* var staticfiles .pytest_cache

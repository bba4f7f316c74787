# The two commands of the README: `make koji` (bring up the main profile)
# and `make test` (the whole test suite). Everything else is set-up.
PYTHON ?= python3
VENV := .venv
PROFILE ?= profiles/koji.cfg
PIP := $(VENV)/bin/pip
# An image with Koji's server code (docs/koji.rst: "The Koji image contract");
# empty: the profile builds one from Fedora's packages.
KOJI_IMAGE ?=
BUILDOUT_ARGS ?= $(if $(KOJI_IMAGE),koji:image=$(KOJI_IMAGE))

.PHONY: koji up plan test quick-test docs clean

koji: up

# Bring up a profile (default: the Koji system).
up: bin/buildout
	bin/buildout -c $(PROFILE) $(BUILDOUT_ARGS)

# What `make up` would do to the main profile, and why, changing nothing
# (exit status 2: there are changes).
plan: bin/buildout
	$(VENV)/bin/dockeroo-plan -c $(PROFILE) $(BUILDOUT_ARGS)

# The whole suite against the real engine, two test processes at a time (a file stays in
# one process); `make quick-test` skips the slow end-to-end runs.
TEST_ARGS ?= -n 2 --dist loadfile
test: bin/test
	bin/test $(TEST_ARGS)

quick-test: bin/test
	bin/test -m "not slow" $(TEST_ARGS)

# The documentation site (docs/): HTML in docs/_build/html, a warning is an error.
docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q 'zc.buildout==6.0.1' 'zc.recipe.egg==6.0.0' -e '.[test,docs]'
	touch $@

bin/buildout: $(VENV)/.installed
	$(VENV)/bin/buildout -q bootstrap
	touch $@

bin/test: bin/buildout buildout.cfg setup.py
	bin/buildout -q
	touch $@

clean:
	rm -rf $(VENV) bin parts develop-eggs eggs .installed.cfg docs/_build

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

# The whole suite against the real engine, three test processes at a time (a file stays in
# one process); `make quick-test` skips the slow end-to-end runs. Three on two cores: much
# of a test is waiting for the engine, a download or a second engine (16 min with two
# processes, 13 with three, on the 2-core machine).
TEST_ARGS ?= -n 3 --dist loadfile
test: bin/test
	bin/test $(TEST_ARGS)

quick-test: bin/test
	bin/test -m "not slow" $(TEST_ARGS)

# The documentation site (docs/): HTML in docs/_build/html, a warning is an error.
docs: $(VENV)/.tools
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# What `make koji` needs, and only that: buildout, its egg recipe and this package.
$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q 'zc.buildout==6.0.1' 'zc.recipe.egg==6.0.0' -e .
	touch $@

# The test and documentation tools (setup.py's extras: pytest, mypy, Sphinx, ...), for
# `make test` and `make docs` only (a bring-up does not pay for installing them). They go
# to $(TOOLS), on the venv's path through a .pth file, their commands linked into
# $(VENV)/bin; not into its site-packages: on every run with a part, buildout hashes
# each file of the site-packages its recipe's eggs come from (for the part's signature),
# and 190 MB of tools there cost every bin/buildout run of the tests (and every rerun of
# `make koji`) 0.4 s of CPU.
TOOLS := $(VENV)/tools
$(VENV)/.tools: $(VENV)/.installed
	$(VENV)/bin/python -c "import importlib.metadata as m; print('\n'.join(r.split(';')[0] \
	    for r in m.requires('dockeroo_nagoya') if 'extra ==' in r and 'zc.recipe.egg' not in r))" \
	    > $(VENV)/tools.txt
	rm -rf $(TOOLS)
	$(PIP) install -q --target $(TOOLS) -r $(VENV)/tools.txt
	$(VENV)/bin/python -c "import site, sys; open(site.getsitepackages()[0] + '/dn-tools.pth', 'w')\
	    .write(sys.argv[1] + '\n')" $(abspath $(TOOLS))
	for tool in $(TOOLS)/bin/*; do [ -e $(VENV)/bin/$${tool##*/} ] || ln -s $(abspath $(TOOLS))/bin/$${tool##*/} $(VENV)/bin/; done
	touch $@

bin/buildout: $(VENV)/.installed
	$(VENV)/bin/buildout -q bootstrap
	touch $@

bin/test: bin/buildout buildout.cfg setup.py $(VENV)/.tools
	bin/buildout -q
	touch $@

clean:
	rm -rf $(VENV) bin parts develop-eggs eggs .installed.cfg docs/_build

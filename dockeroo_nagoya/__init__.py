"""zc.buildout recipes that build and run systems of Docker containers."""

#: The package's layers, lowest first: a module imports only from its own layer and the
#: layers before it (tests/test_layering.py; docs/layout.rst lists them in this order).
LAYERS = ('engine', 'model', 'run', 'mechanisms', 'recipes', 'cli')

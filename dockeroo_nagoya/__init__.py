"""zc.buildout recipes that build and run systems of Docker containers."""

"""The driver layer: the only code that uses docker-py.

Connections, TLS, labels, error mapping and reads of the Docker engine; every
layer above reaches the engine through it.
"""

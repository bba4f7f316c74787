"""What the engine raises, under the names the layers above catch.

The layers above the driver never import docker-py: when they need to tell an
object that is not there from an engine that refused, they catch these names.
Replacing the SDK, or an SDK release that moves its exceptions, changes this
module and nothing above it.
"""
from __future__ import annotations

import docker.errors
import docker.models.containers
import requests.exceptions

#: The engine answered 404: the object is not there.
NotFound = docker.errors.NotFound
#: The engine answered 404 for an image (a :class:`NotFound`).
ImageNotFound = docker.errors.ImageNotFound
#: The engine answered with an error status; :func:`.driver.explain` phrases it.
APIError = docker.errors.APIError
#: Anything the SDK raises (an :class:`APIError` among them).
DockerException = docker.errors.DockerException
#: The connection to the engine failed or timed out (no answer at all).
TransportError = requests.exceptions.RequestException
ConnectionFailed = requests.exceptions.ConnectionError
#: Every failure of a call to the engine: refused, or no answer.
FAILURES = (DockerException, TransportError)

#: A container as the SDK hands it out (``engine.client.containers.get``).
Container = docker.models.containers.Container

__all__ = ['NotFound', 'ImageNotFound', 'APIError', 'DockerException', 'TransportError',
           'ConnectionFailed', 'FAILURES', 'Container']

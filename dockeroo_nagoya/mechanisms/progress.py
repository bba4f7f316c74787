"""Readable progress for long engine work: one log line per step or layer.

The engine streams JSON messages many times a second (byte counters for
each layer); a user wants to know which step or layer is done. These
functions read the streams, log what matters and keep the tail for errors.
"""
from __future__ import annotations

import collections
import logging
from typing import Any, Iterable

import zc.buildout

#: Layer states worth a line; the byte counters in between are not.
LAYER_DONE = ('Pull complete', 'Already exists', 'Pushed', 'Layer already exists',
              'Mounted from')


def follow_build(part: str, stream: Iterable[dict[str, Any]], log: logging.Logger) -> str | None:
    """Log a build's steps; return the built image id; raise with the tail on error."""
    tail: collections.deque[str] = collections.deque(maxlen=30)
    image_id = None
    for message in stream:
        if 'stream' in message:
            for line in message['stream'].splitlines():
                if not line.strip():
                    continue
                tail.append(line)
                if line.startswith('Step '):
                    log.info('%s', line.strip())
                else:
                    log.debug('%s', line.rstrip())
        if 'aux' in message and isinstance(message['aux'], dict):
            image_id = message['aux'].get('ID') or image_id
        if 'error' in message:
            detail = message.get('error') or ''
            text = '\n'.join(tail)
            raise zc.buildout.UserError(
                f'{part}: the build failed: {detail.strip()}' + (f'\n{text}' if text else ''))
    return image_id


def follow_layers(part: str, action: str, stream: Iterable[dict[str, Any]],
                  log: logging.Logger) -> list[str]:
    """Log a pull's or push's layers once each; return the status lines."""
    statuses: list[str] = []
    for message in stream:
        if 'error' in message:
            detail = message.get('errorDetail', {}).get('message') or message['error']
            raise zc.buildout.UserError(f'{part}: {action} failed: {detail.strip()}')
        status = message.get('status', '')
        layer = message.get('id')
        if layer and status.startswith(LAYER_DONE):
            log.info('%s %s: %s', action, layer, status)
        elif not layer and status:
            statuses.append(status)
            log.info('%s', status)
    return statuses

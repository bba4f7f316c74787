"""nagoya's callbacks: ``EVENT = module:function``, called with the container."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

import zc.buildout

from ..engine.errors import Container
from ..model import options as opt


EVENTS = ('pre-create', 'post-create', 'pre-start', 'post-start',
          'pre-stop', 'post-stop', 'pre-remove', 'post-remove')


# -- callbacks -------------------------------------------------------------------
class CallbackFailed(zc.buildout.UserError):
    """A user's callback raised; the message names it."""


class Callbacks:
    """nagoya's callbacks: ``EVENT = module:function``, called with the container.

    The buildout directory is importable. The function gets the SDK's
    container object (docker-py's ``Container``: :mod:`..engine.callbackobjects`); for
    ``pre-create`` that object has no id yet, only ``Name`` and ``Config``.
    """

    def __init__(self, part: str, directory: str, lines: list[tuple[str, str]]) -> None:
        self.part = part
        self.directory = directory
        self.lines = lines

    def __bool__(self) -> bool:
        return bool(self.lines)

    def wanted(self, event: str) -> bool:
        return any(line_event == event for line_event, _ in self.lines)

    def fire(self, event: str, container: Callable[[], Container]) -> None:
        """Call the event's functions in order; ``container`` makes the object when needed."""
        targets = [target for line_event, target in self.lines if line_event == event]
        if not targets:
            return
        model = container()
        for target in targets:
            function = self.resolve(event, target)
            try:
                function(model)
            except Exception as exc:  # noqa: BLE001 - user code: any failure fails the part
                raise CallbackFailed(
                    f'{self.part}: callback {event} = {target} failed on {model.name}: '
                    f'{type(exc).__name__}: {exc}') from exc

    def resolve(self, event: str, target: str) -> Callable[[Any], Any]:
        """The function ``target`` names; a module that cannot be imported, or that has no
        such function, is one line naming the part and the option."""
        module_name, _, function_name = target.partition(':')
        if self.directory not in sys.path:
            sys.path.insert(0, self.directory)
        line = f'{event} = {target}'
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - import runs user code
            reason = (str(exc).splitlines() or [''])[0]
            error = opt.invalid(self.part, 'callbacks', 'a module that can be imported (from '
                                'the buildout directory or the Python path)', line)
            raise CallbackFailed(f'{error} ({type(exc).__name__}: {reason})') from exc
        function = getattr(module, function_name, None)
        if not callable(function):
            error = opt.invalid(self.part, 'callbacks', f'a module with a function '
                                f'{function_name}', line)
            raise CallbackFailed(f'{error} ({module_name} has none)')
        return function


__all__ = ['Callbacks', 'CallbackFailed']

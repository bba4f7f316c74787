"""Make one recipe's ``decide()`` return another decision, inside a buildout process.

tests/test_decide_act.py puts this directory on ``PYTHONPATH`` (as tests/faults/
does for its faults) with ``DN_DECIDE=MODULE:CLASS:ACTION[:KIND]``: the recipe
class ``dockeroo_nagoya.recipes.MODULE:CLASS`` decides as it does, then every
change of its decision (of the object kind ``KIND`` only, when given) gets
``ACTION``. Each patched decision is written to ``DN_DECIDE_LOG`` (one line:
the part and the actions), so the test knows the run asked ``decide()`` at all.
What the run then does is the test's to check: ``act()`` must do the patched thing.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any


def install(spec: str, log: str | None) -> None:
    """Wrap the class's ``decide`` so that its changes carry the given action."""
    module, name, action, *kind = spec.split(':')
    cls = getattr(importlib.import_module(f'dockeroo_nagoya.recipes.{module}'), name)
    decide = cls.decide

    def patched(self: Any, fresh: bool) -> Any:
        decision = decide(self, fresh)
        changes = decision if isinstance(decision, list) else decision.changes
        changes[:] = [dataclasses.replace(change, action=action)
                      if not kind or change.kind == kind[0] else change for change in changes]
        if log:
            with open(log, 'a', encoding='utf-8') as out:
                out.write(f'{self.name} {" ".join(c.action for c in changes)}\n')
        return decision

    cls.decide = patched


if os.environ.get('DN_DECIDE'):
    try:
        install(os.environ['DN_DECIDE'], os.environ.get('DN_DECIDE_LOG'))
    except ImportError:
        pass  # a Python without the package (a command buildout runs)

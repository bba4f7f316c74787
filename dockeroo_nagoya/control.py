"""Compatibility: dockeroo_nagoya.control is dockeroo_nagoya.cli.control since the layout move.

The control scripts in an installed buildout's bin/ (written before the layout move) run
``from dockeroo_nagoya import control; control.main(...)``.
Nothing in the package imports this module.
"""
from dockeroo_nagoya.cli.control import main

__all__ = ['main']

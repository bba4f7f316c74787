"""Sphinx configuration of dockeroo_nagoya's documentation (``make docs``)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '_ext'))

project = 'dockeroo_nagoya'
author = 'dockeroo_nagoya contributors'
copyright = '2026, ' + author
extensions = ['optiontables', 'packagelayout']
exclude_patterns = ['_build']
html_theme = 'alabaster'
html_theme_options = {'page_width': '1100px', 'sidebar_width': '230px'}
html_static_path: list[str] = []
highlight_language = 'none'

"""Pure data and functions: option tables and parsing, decisions, the dependency graph.

Nothing here talks to an engine or keeps state between calls; it imports only
the engine layer (for its types).
"""

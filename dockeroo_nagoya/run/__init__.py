"""What one buildout run knows: its lock, promises between parts, removals, moves, orphans.

The state and the bookkeeping of one run of bin/buildout, shared by its parts.
"""

"""The shared jobs, each once: atomic files, archive members, copies, volume data, probes, sources, throwaway containers.

A recipe that needs one of these jobs calls it here; no recipe does it
again.
"""

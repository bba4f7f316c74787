"""The commands: dockeroo-plan and the control scripts of docker.system parts.

Nothing in the package imports them.
"""

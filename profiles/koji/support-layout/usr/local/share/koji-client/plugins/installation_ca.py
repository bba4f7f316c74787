"""Koji CLI plugin of the dockeroo_nagoya Koji profile: downloads trust the installation's CA.

The koji CLI checks the hub against ``serverca``, but its downloads from
``topurl`` (download-build, download-task, download-logs, a ``build --wait``
fetching logs: ``koji_cli.lib.download_file``) call requests without a
``verify``, so they trust only requests' default bundle or REQUESTS_CA_BUNDLE,
and a private CA fails with CERTIFICATE_VERIFY_FAILED. Koji has no option for
the topurl's CA; its CLI loads the plugins of ``plugin_paths`` from the profile
at every command, so this one, named there by the profile's ``koji.conf``, makes
the downloads trust the CA beside it (``../ca.crt``) in addition to what they
trusted already: REQUESTS_CA_BUNDLE is pointed at a bundle of both, written for
this command and removed when it ends. It defines no command.
"""
from __future__ import annotations

import atexit
import os
import tempfile

_CA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'ca.crt')


def _trusted_before() -> str | None:
    """The bundle requests would use without this plugin (as requests chooses it)."""
    for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


def _trust_installation_ca() -> None:
    try:
        with open(_CA, 'rb') as ca:
            ours = ca.read()
    except OSError:
        return  # no CA beside the plugin: leave the trust as it is
    before = _trusted_before()
    theirs = b''
    if before and os.path.isfile(before):
        with open(before, 'rb') as bundle:
            theirs = bundle.read()
    if ours.strip() in theirs:
        return
    handle, path = tempfile.mkstemp(prefix='koji-ca-', suffix='.pem')
    with os.fdopen(handle, 'wb') as bundle:
        bundle.write(theirs.rstrip(b'\n') + b'\n' + ours if theirs else ours)
    atexit.register(os.unlink, path)
    os.environ['REQUESTS_CA_BUNDLE'] = path


_trust_installation_ca()

"""Malformed configurations for every recipe: one ``Error:`` line naming part and option, nothing torn down.

The table holds, per recipe, missing required options, values of the wrong
type, bad durations, ports, subnets, paths, digests and resource lines,
references to sections that do not exist and names the engine would refuse.
Every case must stop buildout with exactly one ``Error:`` line that names
the part (``bad``) and the option, and no traceback. The runs are quick (the
error comes from the recipe's constructor, before the engine is asked for
anything): each is buildout's own ``main`` in a process forked from one
that imported buildout and the recipes once (``faults/quickbuildout.py``),
and each case checks its own result. The count is printed at the end of the
session. (No option of any recipe takes a size, so there are no bad sizes.)
"""
from __future__ import annotations

import ast
import configparser
import io
import json
import os
import select
import signal
import subprocess
import sys
import tarfile

import pytest

from conftest import PROJECT, Buildout
from faults.harness import FAULTS_DIR, tally
from helpers import assert_one_error, buildout_config, container_part, volume_part

BUSYBOX = 'dn-test/busybox:latest'
DIGEST = 'sha256:' + 'ab' * 32
LONG = 'n' * 300
#: Seconds a case may take: each stops in a recipe's constructor, in well under one.
CASE_TIMEOUT = 20

# (id, recipe, options, what the Error line must say). ``bad`` is the part; ``REF`` cases
# name a section that does not exist and are checked against buildout's own message.
CASES: list[tuple[str, str, str, str]] = [
    # docker.volume
    ('volume-name-too-short', 'docker.volume', 'name = x',
     'bad: option name: expected a name of letters, digits, "_", "." and "-", starting with a '
     'letter or digit, 2 to 255 characters long'),
    ('volume-name-too-long', 'docker.volume', f'name = {LONG}', 'bad: option name: expected a name'),
    ('volume-name-with-slash', 'docker.volume', 'name = data/one', 'bad: option name: expected'),
    ('volume-driver-opts-without-value', 'docker.volume', 'driver-opts = size',
     'bad: option driver-opts: expected KEY=VALUE lines'),
    ('volume-labels-bad-key', 'docker.volume', 'labels = 1tier=one',
     'bad: option labels: expected KEY=VALUE lines with keys'),
    ('volume-restore-from-a-directory', 'docker.volume', 'restore-from = /tmp',
     'bad: option restore-from: expected an existing file'),
    ('volume-plain-password', 'docker.volume', 'password = hunter2',
     'bad: option password: secrets are taken by reference'),
    ('volume-reference', 'docker.volume', 'name = ${nope:name}', 'REF bad:name'),
    ('volume-cert-path-missing', 'docker.volume', 'docker-cert-path = /nonexistent/certs',
     "bad: option docker-cert-path: expected a directory holding ca.pem, cert.pem and key.pem"),
    ('volume-timeout-zero', 'docker.volume', 'timeout = 0',
     'bad: option timeout: expected a number of seconds of at least 1'),
    # docker.network
    ('network-bad-gateway', 'docker.network', 'subnet = 10.9.0.0/24\ngateway = 10.9.0.999',
     'bad: option gateway: expected an IP address'),
    ('network-subnet-no-mask', 'docker.network', 'subnet = 10.9.0.0/33',
     'bad: option subnet: expected a subnet in CIDR form'),
    ('network-range-other-version', 'docker.network', 'subnet = 10.9.0.0/24\nip-range = fd00::/64',
     'bad: option ip-range: expected a range inside the subnet'),
    ('network-internal-not-boolean', 'docker.network', 'internal = sometimes',
     'bad: option internal: expected a boolean'),
    ('network-bad-driver-opts', 'docker.network', 'driver-opts = mtu',
     'bad: option driver-opts: expected KEY=VALUE lines'),
    ('network-reference', 'docker.network', 'subnet = ${nope:subnet}', 'REF bad:subnet'),
    # docker.pull
    ('pull-digest-too-short', 'docker.pull', 'image = busybox\ndigest = sha256:abc',
     'bad: option digest: expected sha256: followed by 64 hex digits'),
    ('pull-tag-and-digest', 'docker.pull', f'image = busybox\ntag = 1\ndigest = {DIGEST}',
     'bad: option digest: expected either tag or digest, not both'),
    ('pull-bad-tag', 'docker.pull', 'image = busybox\ntag = -bad',
     'bad: option image: expected an image reference'),
    ('pull-password-env-and-file', 'docker.pull',
     'image = busybox\nusername = u\npassword-env = HOME\npassword-file = /etc/hostname',
     'bad: options password-env and password-file: expected one of them, not both'),
    ('pull-password-without-username', 'docker.pull', 'image = busybox\npassword-env = HOME',
     'bad: option username: required when a password is given'),
    ('pull-plain-token', 'docker.pull', 'image = busybox\ntoken = abc',
     'bad: option token: secrets are taken by reference'),
    ('pull-keep-not-boolean', 'docker.pull', 'image = busybox\nkeep = forever',
     'bad: option keep: expected a boolean'),
    ('pull-reference', 'docker.pull', 'image = ${nope:image}', 'REF bad:image'),
    # docker.build
    ('build-no-cache-not-boolean', 'docker.build', 'source = ctx\nno-cache = please',
     'bad: option no-cache: expected a boolean'),
    ('build-name-with-digest', 'docker.build', f'source = ctx\nname = app@{DIGEST}',
     'bad: option name: expected a name to tag, not a digest'),
    ('build-tag-twice', 'docker.build', 'source = ctx\nname = app:one\ntag = two',
     'bad: option tag: expected a tag in name or in tag, not in both'),
    ('build-bad-labels', 'docker.build', 'source = ctx\nlabels = just-a-word',
     'bad: option labels: expected KEY=VALUE lines'),
    ('build-source-is-a-file', 'docker.build', 'source = root.tar',
     'bad: option source: expected an existing directory'),
    ('build-part-name-no-image', 'docker.build', 'source = ctx', 'CASE Bad: option name: expected'),
    ('build-reference', 'docker.build', 'source = ${nope:location}', 'REF bad:source'),
    # a source's login is read as a registry's (secrets.login)
    ('build-source-username-alone', 'docker.build',
     'source = http://127.0.0.1:9/ctx.tar\nsource-username = u',
     'bad: option source-username: expected source-password-env or source-password-file to go '
     'with it'),
    ('build-source-netrc-and-username', 'docker.build',
     'source = http://127.0.0.1:9/ctx.tar\nsource-username = u\nsource-netrc = netrc',
     'bad: options source-netrc and source-username: expected one of them, not both'),
    # docker.push
    ('push-no-image', 'docker.push', 'tags = x/y:1',
     'bad: option image: expected the local image to push'),
    ('push-bad-tag', 'docker.push', 'image = busybox\ntags = Upper/Case:1',
     'bad: option tags: expected an image reference'),
    ('push-password-file-missing', 'docker.push',
     'image = busybox\nusername = u\npassword-file = /nonexistent/pw',
     'bad: option password-file: expected a readable file'),
    ('push-plain-private-key', 'docker.push', 'image = busybox\nprivate-key = x',
     'bad: option private-key: secrets are taken by reference'),
    ('push-reference', 'docker.push', 'image = ${nope:image}', 'REF bad:image'),
    # docker.save, docker.load, docker.control, profile-directory, dockeroo's docker-machine
    ('save-bad-name', 'docker.save', 'name = Upper/Case', 'bad: option name: expected'),
    ('load-missing-file', 'docker.load', 'path = /nonexistent/image.tar',
     'bad: option path: expected'),
    ('control-missing-part', 'docker.control', 'parts = nowhere',
     'bad: option parts: expected names of docker.run parts'),
    ('profile-directory-missing', 'profile-directory', 'path = no-such-directory',
     'bad: option path: a directory beside'),
    ('machine-create', 'machine.create', 'machine-name = m', 'bad: recipe machine.create is not supported'),
    # the engine in one phrase (engine =, a line of a list of machines)
    ('run-engine-bad-scheme', 'docker.run', f'image = {BUSYBOX}\nengine = tpc://box:2376',
     "bad: option engine: expected an engine URL of unix://, tcp:// or ssh://"),
    ('run-engine-bad-tls-word', 'docker.run', f'image = {BUSYBOX}\nengine = tcp://box:2376 tsl=/d',
     'bad: option engine: expected tls=DIR after the engine'),
    ('run-engine-contradicted', 'docker.run',
     f'image = {BUSYBOX}\nengine = tcp://box:2376\ndocker-host = tcp://other:2376',
     'bad: option docker-host: expected no docker-host beside engine = tcp://box:2376'),
    # docker.run
    ('run-missing-image', 'docker.run', 'command = true', 'bad: option image is required but missing'),
    ('run-name-too-short', 'docker.run', f'image = {BUSYBOX}\nname = x', 'bad: option name: expected'),
    ('run-port-protocol', 'docker.run', f'image = {BUSYBOX}\nports = 80/icmp',
     "bad: option ports: expected ports lines [IP:][HOST_PORT:]CONTAINER_PORT"),
    ('run-port-zero', 'docker.run', f'image = {BUSYBOX}\nports = 0:80',
     'bad: option ports: expected ports lines'),
    ('run-port-bad-ip', 'docker.run', f'image = {BUSYBOX}\nports = 300.1.1.1:80:80',
     'bad: option ports: expected ports lines'),
    ('run-stop-timeout-not-duration', 'docker.run', f'image = {BUSYBOX}\nstop-timeout = soon',
     'bad: option stop-timeout: expected a duration such as 30, 30s, 500ms, 1m30s or 2h'),
    ('run-wait-timeout-negative', 'docker.run', f'image = {BUSYBOX}\nwait-timeout = -5s',
     'bad: option wait-timeout: expected a duration'),
    ('run-healthcheck-interval-unit', 'docker.run',
     f'image = {BUSYBOX}\nhealthcheck = true\nhealthcheck-interval = 3 days',
     'bad: option healthcheck-interval: expected a duration'),
    ('run-healthcheck-retries-zero', 'docker.run', f'image = {BUSYBOX}\nhealthcheck-retries = 0',
     'bad: option healthcheck-retries: expected an integer of at least 1'),
    ('run-replicas-not-integer', 'docker.run', f'image = {BUSYBOX}\nreplicas = two',
     'bad: option replicas: expected an integer of at least 1'),
    ('run-cap-lowercase', 'docker.run', f'image = {BUSYBOX}\ncap-add = net_admin',
     'bad: option cap-add: expected capability names'),
    ('run-volume-mode', 'docker.run', f'image = {BUSYBOX}\nvolumes = data:/data:rx',
     'bad: option volumes: expected volumes lines SOURCE:/CONTAINER/PATH'),
    ('run-volume-relative-target', 'docker.run', f'image = {BUSYBOX}\nvolumes = ./here:data',
     'bad: option volumes: expected volumes lines'),
    ('run-volumes-from-mode', 'docker.run', f'image = {BUSYBOX}\nvolumes-from = other:rx',
     'bad: option volumes-from: expected volumes-from lines CONTAINER[:ro|rw]'),
    ('run-link-bad-alias', 'docker.run', f'image = {BUSYBOX}\nlinks = db:a:b',
     'bad: option links: expected links lines CONTAINER[:ALIAS]'),
    ('run-layout-missing', 'docker.run', f'image = {BUSYBOX}\nlayout = /nonexistent/layout',
     'bad: option layout: expected an existing directory'),
    ('run-command-unbalanced', 'docker.run', f"image = {BUSYBOX}\ncommand = sh -c 'echo",
     'bad: option command: expected a command with balanced quotes'),
    ('run-restart-retries-on-always', 'docker.run', f'image = {BUSYBOX}\nrestart = always:3',
     'bad: option restart: expected no, always, unless-stopped or on-failure[:RETRIES]'),
    ('run-job-with-restart', 'docker.run', f'image = {BUSYBOX}\njob = true\nrestart = always',
     'bad: option restart: expected no for a job'),
    ('run-aliases-without-network', 'docker.run', f'image = {BUSYBOX}\nnetwork-aliases = www',
     'bad: option network-aliases: expected a user-defined network'),
    ('run-network-host-and-other', 'docker.run', f'image = {BUSYBOX}\nnetworks =\n  host\n  other',
     'bad: option networks: expected host or none alone'),
    ('run-gate-port', 'docker.run', f'image = {BUSYBOX}\nwait-for = http://:99999/',
     'bad: option wait-for: expected a URL with a port number from 1 to 65535'),
    ('run-gate-regex', 'docker.run', f'image = {BUSYBOX}\nwait-for = log:([unclosed',
     'bad: option wait-for: expected a valid regular expression'),
    ('run-callback-module', 'docker.run', f'image = {BUSYBOX}\ncallbacks = pre-start = 9lives:go',
     'bad: option callbacks: expected callbacks lines EVENT = module:function'),
    ('run-env-bad-key', 'docker.run', f'image = {BUSYBOX}\nenv = 1ST=x',
     'bad: option env: expected KEY=VALUE lines with keys'),
    ('run-plain-secret', 'docker.run', f'image = {BUSYBOX}\nsecret = swordfish',
     'bad: option secret: secrets are taken by reference'),
    ('run-reference', 'docker.run', 'image = ${nope:image}', 'REF bad:image'),
    # docker.copy
    ('copy-no-container', 'docker.copy', 'paths = /a /b',
     'bad: option container-from: expected container-from, container-to or both'),
    ('copy-missing-paths', 'docker.copy', 'container-to = target1',
     'bad: option paths is required but missing'),
    ('copy-relative-container-path', 'docker.copy', 'container-to = target1\npaths = conf/ etc/app/',
     'bad: option paths: expected absolute container paths'),
    ('copy-host-needs-two-paths', 'docker.copy', 'container-to = target1\npaths = /etc/',
     'bad: option paths: expected SOURCE TARGET lines when one side is the host'),
    ('copy-the-root', 'docker.copy', 'container-from = one1\ncontainer-to = two2\npaths = /',
     'bad: option paths: expected paths below /'),
    ('copy-bad-container-name', 'docker.copy', 'container-to = a\npaths = x /x',
     'bad: option container-to: expected a name'),
    # docker.command
    ('command-missing-container', 'docker.command', 'command = ls',
     'bad: option container is required but missing'),
    ('command-unbalanced', 'docker.command', "container = app1\ncommand = sh -c 'x",
     'bad: option command: expected a command line'),
    ('command-bad-script-name', 'docker.command', 'container = app1\ncommand = ls\nscript-name = ../x',
     'bad: option script-name: expected a name'),
    # docker.service
    ('service-port-out-of-range', 'docker.service', f'image = {BUSYBOX}\nports = 99999:80',
     'bad: option ports: expected a port number from 1 to 65535'),
    ('service-port-syntax', 'docker.service', f'image = {BUSYBOX}\nports = 8080',
     'bad: option ports: expected PUBLISHED:TARGET port lines (or PUBLISHED:TARGET:host)'),
    ('service-replicas-not-integer', 'docker.service', f'image = {BUSYBOX}\nreplicas = many',
     'bad: option replicas: expected an integer of at least 0'),
    ('service-update-delay', 'docker.service', f'image = {BUSYBOX}\nupdate-delay = 1 fortnight',
     'bad: option update-delay: expected a duration'),
    ('service-secret-file-missing', 'docker.service',
     f'image = {BUSYBOX}\nsecrets = token = /nonexistent/token',
     'bad: option secrets: expected an existing file'),
    ('service-secret-syntax', 'docker.service', f'image = {BUSYBOX}\nsecrets = /etc/hostname',
     'bad: option secrets: expected NAME = /path/to/file lines'),
    ('service-mount-relative', 'docker.service', f'image = {BUSYBOX}\nmounts = data:relative',
     'bad: option mounts: expected SOURCE:/TARGET[:ro|rw] lines'),
    # docker.bootstrap
    ('bootstrap-nothing-to-import', 'docker.bootstrap', 'name = img/base',
     'bad: option archives: expected at least one archive, or a rootfs-command'),
    ('bootstrap-digest-syntax', 'docker.bootstrap', 'name = img/base\narchives = root.tar sha256:xyz',
     'bad: option archives: expected sha256: followed by 64 hex digits'),
    ('bootstrap-digest-mismatch', 'docker.bootstrap', f'name = img/base\narchives = root.tar {DIGEST}',
     'bad: option archives:'),
    ('bootstrap-archive-missing', 'docker.bootstrap', 'name = img/base\narchives = nothing.tar',
     'bad: option archives:'),
    ('bootstrap-unknown-word', 'docker.bootstrap', 'name = img/base\narchives = root.tar md5:00',
     'bad: option archives: expected URL-or-path [/prefix] [sha256:DIGEST] lines'),
    ('bootstrap-bad-volumes', 'docker.bootstrap', 'name = img/base\narchives = root.tar\nvolumes = data',
     'bad: option volumes: expected SOURCE:/container/path[:ro|rw] lines'),
    ('bootstrap-bad-expose', 'docker.bootstrap', 'name = img/base\narchives = root.tar\nexpose = eighty',
     'bad: option expose: expected ports such as 80, 8000-8010 or 53/udp'),
    ('bootstrap-command-json', 'docker.bootstrap', 'name = img/base\narchives = root.tar\ncommand = ["a", 1]',
     'bad: option command: expected a JSON array of strings or a command line'),
    ('bootstrap-old-and-new-name', 'docker.bootstrap',
     'name = img/base\narchives = root.tar\nscript = true\nbuild-script = true',
     'bad: option build-script is the old name of script: give only one'),
    ('bootstrap-reference', 'docker.bootstrap', 'name = img/base\narchives = ${nope:path}',
     'REF bad:archives'),
    # docker.assemble
    ('assemble-missing-build-image', 'docker.assemble', 'name = img/small',
     'bad: option build-image is required but missing'),
    ('assemble-relative-build-root', 'docker.assemble',
     f'name = img/small\nbuild-image = {BUSYBOX}\nbuild-root = target',
     'bad: option build-root: expected an absolute path below /'),
    ('assemble-package-manager', 'docker.assemble',
     f'name = img/small\nbuild-image = {BUSYBOX}\npackage-manager = yum',
     'bad: option package-manager: expected one of auto, apt, portage'),
    ('assemble-portage-option-with-apt', 'docker.assemble',
     f'name = img/small\nbuild-image = {BUSYBOX}\npackage-manager = apt\nuse = dev-lang/python ssl',
     'bad: option use: expected nothing with package-manager = apt'),
    ('assemble-negative-uid', 'docker.assemble',
     f'name = img/small\nbuild-image = {BUSYBOX}\nlayout-uid = -1',
     'bad: option layout-uid: expected an integer of at least 0'),
    ('assemble-relative-copy', 'docker.assemble',
     f'name = img/small\nbuild-image = {BUSYBOX}\ncopy = etc/hostname',
     'bad: option copy: expected absolute container paths'),
    ('assemble-relative-volume', 'docker.assemble',
     f'name = img/small\nbuild-image = {BUSYBOX}\nvolumes = data',
     'bad: option volumes: expected absolute paths in the container'),
    # docker.diskimage
    ('diskimage-missing-base-image', 'docker.diskimage',
     f'build-image = {BUSYBOX}\nbuild-root = /mnt\nimage-file = /out/disk.img',
     'bad: option base-image is required but missing'),
    ('diskimage-build-root-is-root', 'docker.diskimage',
     f'build-image = {BUSYBOX}\nbase-image = {BUSYBOX}\nbuild-root = /\nimage-file = /out/disk.img',
     'bad: option build-root: expected an absolute path below / in the builder'),
    ('diskimage-relative-image-file', 'docker.diskimage',
     f'build-image = {BUSYBOX}\nbase-image = {BUSYBOX}\nbuild-root = /mnt\nimage-file = disk.img',
     'bad: option image-file: expected an absolute path below / in the builder'),
    ('diskimage-privileged-not-boolean', 'docker.diskimage',
     f'build-image = {BUSYBOX}\nbase-image = {BUSYBOX}\nbuild-root = /mnt\nimage-file = /o/d\n'
     'privileged = root',
     'bad: option privileged: expected a boolean'),
    # docker.system (members are sections without a recipe)
    ('system-missing-containers', 'docker.system', '', 'bad: option containers is required but missing'),
    ('system-unknown-section', 'docker.system', 'containers = ghost',
     'bad: option containers: expected names of sections of this buildout'),
    ('system-member-bad-port', 'docker.system', 'containers = member\n[member]\n'
     f'image = {BUSYBOX}\nports = 99999', 'bad: member member: option ports: expected ports lines'),
    ('system-member-unknown-depends', 'docker.system', 'containers = member\n[member]\n'
     f'image = {BUSYBOX}\ndepends = ghost', 'bad: member member: option depends: expected members'),
    ('system-member-one-letter-name', 'docker.system', f'containers = m\n[m]\nimage = {BUSYBOX}',
     'bad: member m: option name: expected a name'),
    ('system-cycle', 'docker.system', f'containers = one two\n[one]\nimage = {BUSYBOX}\nlinks = two\n'
     f'[two]\nimage = {BUSYBOX}\nlinks = one', 'bad: option containers: dependency cycle'),
    ('system-member-reference', 'docker.system', 'containers = member\n[member]\nimage = ${nope:image}',
     'REF member:image'),
    # docker.commit, docker.persist
    ('commit-missing-container', 'docker.commit', 'name = img/saved',
     'bad: option container is required but missing'),
    ('commit-pause-not-boolean', 'docker.commit', 'container = app1\nname = img/saved\npause = briefly',
     'bad: option pause: expected a boolean'),
    ('commit-bad-env', 'docker.commit', 'container = app1\nname = img/saved\nenv = NOVALUE',
     'bad: option env: expected KEY=VALUE lines'),
    ('commit-reference', 'docker.commit', 'container = ${nope:name}\nname = img/saved',
     'REF bad:container'),
    ('persist-relative-path', 'docker.persist', 'container = app1\nname = img/saved\npaths = data',
     'bad: option paths: expected absolute paths in the container'),
    # docker.image (moromi's resource lines)
    ('image-missing-from', 'docker.image', 'name = img/made', 'bad: option from is required but missing'),
    ('image-resource-syntax', 'docker.image', f'name = img/made\nfrom = {BUSYBOX}\nlibs = setup.sh into /opt',
     'bad: option libs: expected HOSTPATH in /CONTAINER/DIR or HOSTPATH at /CONTAINER/PATH lines'),
    ('image-resource-relative-target', 'docker.image', f'name = img/made\nfrom = {BUSYBOX}\nruns = setup.sh in opt',
     'bad: option runs: expected HOSTPATH in /CONTAINER/DIR'),
    ('image-resource-missing-file', 'docker.image', f'name = img/made\nfrom = {BUSYBOX}\nlibs = ghost.sh in /opt',
     'bad: option libs: expected HOSTPATH in /CONTAINER/DIR or HOSTPATH at /CONTAINER/PATH lines '
     'whose HOSTPATH exists'),
    ('image-two-entrypoints', 'docker.image',
     f'name = img/made\nfrom = {BUSYBOX}\nentrypoint =\n  setup.sh at /a\n  setup.sh at /b',
     'bad: option entrypoint: expected one resource line'),
    ('image-reference', 'docker.image', 'name = img/made\nfrom = ${nope:image}', 'REF bad:from'),
    # docker.temporary
    ('temporary-missing-from', 'docker.temporary', 'name = img/tmp\nscript = true',
     'bad: option from is required but missing'),
    ('temporary-link-without-alias', 'docker.temporary', f'from = {BUSYBOX}\nscript = true\nlinks = {BUSYBOX}',
     'bad: option links: expected'),
    ('temporary-stop-timeout', 'docker.temporary', f'from = {BUSYBOX}\nscript = true\nstop-timeout = later',
     'bad: option stop-timeout: expected a duration'),
    # numbers that parse as Python floats or ints but are no durations or counts: each
    # finite and bounded, in the option table's parser (issue 22)
    ('run-stop-timeout-inf', 'docker.run', f'image = {BUSYBOX}\nstop-timeout = inf',
     'bad: option stop-timeout: expected a duration such as 30, 30s, 500ms, 1m30s or 2h, '
     'from 0 to 24h'),
    ('run-wait-timeout-inf', 'docker.run', f'image = {BUSYBOX}\nwait-for = tcp:80\nwait-timeout = inf',
     'bad: option wait-timeout: expected a duration'),
    ('run-wait-timeout-nan', 'docker.run', f'image = {BUSYBOX}\nwait-timeout = nan',
     'bad: option wait-timeout: expected a duration'),
    ('run-healthcheck-interval-1e400', 'docker.run',
     f'image = {BUSYBOX}\nhealthcheck = true\nhealthcheck-interval = 1e400',
     'bad: option healthcheck-interval: expected a duration'),
    ('run-healthcheck-timeout-huge', 'docker.run',
     f'image = {BUSYBOX}\nhealthcheck = true\nhealthcheck-timeout = {"9" * 400}h',
     'bad: option healthcheck-timeout: expected a duration'),
    ('run-stop-timeout-years', 'docker.run', f'image = {BUSYBOX}\nstop-timeout = 99999999h',
     'bad: option stop-timeout: expected a duration'),
    ('run-replicas-fifty-million', 'docker.run', f'image = {BUSYBOX}\nreplicas = 50000000',
     'bad: option replicas: expected an integer of at least 1 and at most 1000'),
    ('run-replicas-arabic-digit', 'docker.run', f'image = {BUSYBOX}\nreplicas = \u0663',
     'bad: option replicas: expected an integer'),
    ('run-healthcheck-retries-huge', 'docker.run',
     f'image = {BUSYBOX}\nhealthcheck = true\nhealthcheck-retries = {"9" * 30}',
     'bad: option healthcheck-retries: expected an integer'),
    ('service-stop-timeout-inf', 'docker.service', f'image = {BUSYBOX}\nstop-timeout = inf',
     'bad: option stop-timeout: expected a duration'),
    ('service-update-delay-nan', 'docker.service', f'image = {BUSYBOX}\nupdate-delay = nan',
     'bad: option update-delay: expected a duration'),
    ('service-wait-timeout-1e400', 'docker.service', f'image = {BUSYBOX}\nwait-timeout = 1e400',
     'bad: option wait-timeout: expected a duration'),
    ('service-replicas-fifty-million', 'docker.service', f'image = {BUSYBOX}\nreplicas = 50000000',
     'bad: option replicas: expected an integer of at least 0 and at most 1000'),
    ('temporary-stop-timeout-inf', 'docker.temporary', f'from = {BUSYBOX}\nscript = true\nstop-timeout = inf',
     'bad: option stop-timeout: expected a duration'),
    ('assemble-uid-huge', 'docker.assemble',
     f'name = img/small\nbuild-image = {BUSYBOX}\nlayout-uid = {2 ** 40}',
     'bad: option layout-uid: expected an integer of at least 0 and at most 4294967294'),
    ('volume-timeout-huge', 'docker.volume', f'timeout = {"9" * 30}',
     'bad: option timeout: expected a number of seconds of at least 1 and at most 86400'),
    ('system-member-stop-timeout-inf', 'docker.system', 'containers = member\n[member]\n'
     f'image = {BUSYBOX}\nstop-timeout = inf', 'bad: member member: option stop-timeout: expected a duration'),
    ('run-restart-retries-huge', 'docker.run', f'image = {BUSYBOX}\nrestart = on-failure:{"9" * 30}',
     'bad: option restart: expected no, always, unless-stopped or on-failure[:RETRIES]'),
    ('run-gate-port-arabic-digits', 'docker.run', f'image = {BUSYBOX}\nwait-for = tcp:\u0668\u0660',
     'bad: option wait-for: expected tcp:PORT with a port number from 1 to 65535'),
    # URLs that do not parse: one line, not urllib's ValueError when first used
    ('run-engine-unclosed-ipv6', 'docker.run', f'image = {BUSYBOX}\nengine = tcp://[::1',
     'bad: option engine: expected an engine URL'),
    ('volume-docker-host-unclosed-ipv6', 'docker.volume', 'docker-host = tcp://[::1',
     'bad: option docker-host: expected an engine URL'),
    ('run-gate-unclosed-ipv6', 'docker.run', f'image = {BUSYBOX}\nwait-for = http://[::1/',
     'bad: option wait-for: expected a URL'),
    # files a part reads that are not UTF-8 text: one line naming the option
    ('run-env-file-latin-1', 'docker.run', f'image = {BUSYBOX}\nenv-file = latin1.txt',
     'bad: option env-file: expected a readable file of UTF-8 text'),
    ('pull-password-file-latin-1', 'docker.pull',
     'image = busybox\nusername = u\npassword-file = latin1.txt',
     'bad: option password-file: expected a readable file of UTF-8 text'),
    ('build-dockerfile-latin-1', 'docker.build', 'source = latin1ctx\ndockerfile = Dockerfile',
     'bad: option dockerfile: expected a readable Dockerfile of UTF-8 text'),
    ('build-dockerignore-latin-1', 'docker.build', 'source = ignorectx',
     'bad: option source: expected a build context whose .dockerignore is UTF-8 text'),
    # a file that is no image archive: one line, not one per compression tarfile tried
    ('load-not-a-tar', 'docker.load', 'path = latin1.txt',
     'bad: option path: expected a tar file from docker save (it does not read as a tar'),
]


def case_config(recipe: str, body: str, part: str = 'bad') -> str:
    head, _, rest = body.partition('\n[')
    text = f'[buildout]\nparts = {part}\n\n[{part}]\nrecipe = dockeroo_nagoya:{recipe}\n{head}\n'
    return text + (f'\n[{rest}\n' if rest else '')


def prepare(b: Buildout, recipe: str, body: str) -> None:
    """The files cases name: a build context, a tarball, a resource, a directory."""
    (b.directory / 'ctx').mkdir()
    (b.directory / 'ctx' / 'Dockerfile').write_text('FROM scratch\n')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        info = tarfile.TarInfo('etc/release')
        info.size = 4
        tar.addfile(info, io.BytesIO(b'one\n'))
    (b.directory / 'root.tar').write_bytes(buf.getvalue())
    (b.directory / 'setup.sh').write_text('#!/bin/sh\ntrue\n')
    latin1 = 'MOT_DE_PASSE=d\u00e9j\u00e0\n'.encode('latin-1')
    (b.directory / 'latin1.txt').write_bytes(latin1)
    (b.directory / 'latin1ctx').mkdir()
    (b.directory / 'latin1ctx' / 'Dockerfile').write_bytes(b'FROM scratch\n# caf\xe9\n')
    (b.directory / 'ignorectx').mkdir()
    (b.directory / 'ignorectx' / 'Dockerfile').write_text('FROM scratch\n')
    (b.directory / 'ignorectx' / '.dockerignore').write_bytes(b'caf\xe9\n')
    b.write(case_config(recipe, body))


@pytest.fixture(scope='module')
def outcomes(request, client, busybox, tmp_path_factory):
    """Every selected case run once (forks of one process, see faults/quickbuildout.py): id -> output.

    ``busybox``: cases name it (BUSYBOX), and a docker.system's members' images are looked
    up in its ``__init__``: without the image on the engine those cases fail otherwise."""
    assert busybox == BUSYBOX
    wanted = {item.callspec.params['case'][0] for item in request.session.items
              if item.module.__name__ == __name__ and hasattr(item, 'callspec')
              and 'case' in item.callspec.params}
    made: dict[str, Buildout] = {}
    for name, recipe, body, expected in CASES:
        if name in wanted:
            b = made[name] = Buildout(tmp_path_factory.mktemp(name), client)
            prepare(b, recipe, body)
            if expected.startswith('CASE'):
                # The part name itself is what is wrong (an image name must be lower case).
                b.write(case_config(recipe, body, part='Bad'))
    def start() -> subprocess.Popen:
        # A session of its own, so that a case that hangs is ended with its forked run.
        return subprocess.Popen([sys.executable, str(FAULTS_DIR / 'quickbuildout.py'), '-N'],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    worker = start()
    try:
        found: dict[str, str] = {}
        for name, b in made.items():
            worker.stdin.write(f'{b.directory}\n')
            worker.stdin.flush()
            if not select.select([worker.stdout], [], [], CASE_TIMEOUT)[0]:
                # A run that does not end (a wait without end, a loop over millions) is a
                # failure of its own case; the next cases get a new worker.
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(30)
                found[name] = f'[hung]\nno end within {CASE_TIMEOUT} s\n' + \
                    (b.directory / 'buildout-output.txt').read_text(errors='replace')
                worker = start()
                continue
            code = json.loads(worker.stdout.readline())['code']
            found[name] = f'[{code}]\n' + (b.directory / 'buildout-output.txt').read_text()
        yield found
    finally:
        worker.stdin.close()
        worker.wait(30)
        for b in made.values():
            if b.owned('containers') or b.owned('volumes') or b.owned('networks'):
                b.cleanup()


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_line(outcomes, request, case):
    name, recipe, body, expected = case
    counter = tally(request.config)
    counter.add('bad inputs')
    out = outcomes[name]
    assert not out.startswith('[hung]'), f'buildout did not end:\n{out}'
    assert not out.startswith('[0]'), f'buildout accepted it:\n{out}'
    line = assert_one_error(out)
    if expected.startswith('REF '):
        part, option = expected[4:].split(':')
        assert 'was not defined' in line, out
        assert f'Getting option {part}:{option}.' in out, out
    elif expected.startswith('CASE '):
        assert expected[5:] in line, out
    else:
        assert line.startswith('Error: ' + expected.split(':', 1)[0]), out
        assert expected in line, out
    assert 'Uninstalling' not in out and 'Installing bad' not in out, out
    counter.add('bad inputs clear')


def recipe_names() -> set[str]:
    """The recipes setup.py declares, without dockeroo's gentoo aliases."""
    tree = ast.parse((PROJECT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'RECIPES':
            names = ast.literal_eval(node.value)
            return {name for name in names if not name.startswith('docker.gentoo-')}
    raise AssertionError('setup.py has no RECIPES')


def test_the_table_covers_every_recipe():
    recipes = {recipe for _, recipe, _, _ in CASES}
    missing = recipe_names() - recipes
    assert not missing, f'no bad input for {sorted(missing)}'
    print(f'\n{len(CASES)} malformed configurations in the table')


# -- nothing is torn down ---------------------------------------------------------------
def parts_recorded(b) -> dict[str, dict[str, str]]:
    """The parts' sections of .installed.cfg (buildout appends its own bookkeeping to [buildout])."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.read_string((b.directory / '.installed.cfg').read_text())
    return {name: dict(parser[name]) for name in parser.sections() if name != 'buildout'}


def test_bad_configuration_tears_no_container_down(buildout, client, busybox):
    """A changed container part and a broken one: the error comes before any uninstall."""
    b = buildout
    good = buildout_config(
        ['data', 'web', 'other'], volume_part(b),
        container_part(b, 'web', busybox, init='true', stop_timeout='1',
                       volumes='${data:name}:/data', command='httpd -f -p 80', env='MODE=one'),
        container_part(b, 'other', busybox, init='true', stop_timeout='1',
                       command='httpd -f -p 80'))
    b.write(good)
    b.run('-N')
    before = {c.name: c.id for c in b.owned('containers')}
    installed = parts_recorded(b)
    # web changes (it would be reinstalled, its container recreated); other is broken.
    b.write(good.replace('MODE=one', 'MODE=two').replace(
        f'name = {b.prefix}-other', f'name = {b.prefix}-other\nports = 80:99999'))
    out = b.fail('-N')
    assert 'other: option ports' in assert_one_error(out)
    assert 'Uninstalling' not in out
    assert parts_recorded(b) == installed
    assert {c.name: c.id for c in b.owned('containers')} == before
    assert all(c.status == 'running' for c in b.owned('containers'))
    # The same with the changed part itself broken, and with a reference to nothing.
    for broken in ('env = MODE=two\nstop-timeout = whenever', 'env = MODE=${nope:mode}'):
        b.write(good.replace('env = MODE=one', broken))
        out = b.fail('-N')
        assert_one_error(out)
        assert 'Uninstalling' not in out
        assert {c.name: c.id for c in b.owned('containers')} == before

"""docker.volume: adoption, carried-over content, archives before removal."""
from __future__ import annotations

from helpers import run_output, buildout_config, ids, section, volume_digest, volume_part, write_volume_file


def volume_cfg(b, extra: str = '', parts: str = 'data') -> str:
    """The volume ``PREFIX-data`` with the option line ``extra``, among ``parts``."""
    return buildout_config(parts.split(), volume_part(b) + (extra + '\n' if extra else ''))


def test_volume_is_created_once_and_exposes_its_name(buildout, client):
    b = buildout
    b.write(volume_cfg(b, parts='data show') + '\n'
            + section('show', 'docker.volume', name='${data:name}-copy'))
    b.run('-N')
    first = ids(client, b)
    assert set(first) == {f'volume:{b.prefix}-data', f'volume:{b.prefix}-data-copy'}
    b.run('-N')
    assert ids(client, b) == first


def test_label_change_makes_a_new_volume_and_carries_the_content_over(buildout, client):
    b = buildout
    b.write(volume_cfg(b, 'labels = tier=one'))
    b.run('-N')
    write_volume_file(client, f'{b.prefix}-data', 'db/state', b'\x00precious\xff' * 1000, uid=999, mode=0o600)
    before = volume_digest(client, f'{b.prefix}-data')
    b.write(volume_cfg(b, 'labels = tier=two'))
    out = b.run('-N').stdout
    assert 'recreating volume' in out and 'labels changed' in out
    assert client.volumes.get(f'{b.prefix}-data').attrs['Labels']['tier'] == 'two'
    assert volume_digest(client, f'{b.prefix}-data') == before
    assert list((b.directory / 'var' / 'backups').glob('*.tar')), 'the carried content is archived too'


def test_removed_part_keeps_its_volume_by_default(buildout, client):
    b = buildout
    b.write(volume_cfg(b))
    b.run('-N')
    b.write(volume_cfg(b, parts=''))
    out = b.run('-N').stdout
    assert 'keeping volume' in out
    assert client.volumes.get(f'{b.prefix}-data')


def test_keep_false_archives_before_removing_and_restore_from_seeds(buildout, client):
    b = buildout
    b.write(volume_cfg(b, 'keep = false'))
    b.run('-N')
    write_volume_file(client, f'{b.prefix}-data', 'a.txt', b'hello', uid=33, mode=0o751)
    before = volume_digest(client, f'{b.prefix}-data')
    b.write(volume_cfg(b, parts=''))
    b.run('-N')
    assert not client.volumes.list(filters={'name': f'{b.prefix}-data'})
    [archive] = (b.directory / 'var' / 'backups').glob('*.tar')
    assert oct(archive.stat().st_mode & 0o777) == '0o600'
    b.write(volume_cfg(b, f'restore-from = {archive}'))
    b.run('-N')
    assert volume_digest(client, f'{b.prefix}-data') == before


def test_renamed_volume_gets_the_old_content(buildout, client):
    b = buildout
    b.write(volume_cfg(b))
    b.run('-N')
    write_volume_file(client, f'{b.prefix}-data', 'x', b'x' * 10)
    before = volume_digest(client, f'{b.prefix}-data')
    b.write(volume_cfg(b).replace(f'{b.prefix}-data', f'{b.prefix}-renamed'))
    out = b.run('-N').stdout
    assert 'copying the content' in out
    assert volume_digest(client, f'{b.prefix}-renamed') == before
    assert client.volumes.get(f'{b.prefix}-data'), 'keep = true leaves the old volume'


def test_volume_renamed_with_its_container_goes_at_the_end_of_the_run(buildout, client,
                                                                      busybox):
    """keep = false: the old volume is still mounted while the volume part installs; it is
    archived and removed once the container's part replaced the container (it used to stop
    every run with "still used"). The old container is stopped before the copy, so what it
    writes as it stops is carried over too."""
    b = buildout

    def config(tag: str) -> str:
        return volume_cfg(b, 'keep = false', parts='data app').replace(
            f'{b.prefix}-data', f'{b.prefix}-{tag}') + '\n' + section(
            'app', 'docker.run', name=f'{b.prefix}-app-{tag}', image=busybox,
            command='sh -c "trap \'echo bye > /data/last; exit 0\' TERM; while :; do sleep 1; done"',
            init='true', volumes='${data:name}:/data')

    def read(volume: str, path: str) -> bytes:
        return run_output(client, busybox, f'cat /v/{path}',
                                     volumes={volume: {'bind': '/v', 'mode': 'ro'}})

    b.write(config('one'))
    b.run('-N')
    write_volume_file(client, f'{b.prefix}-one', 'state', b'kept' * 100)
    b.write(config('two'))
    out = b.run('-N').stdout
    assert 'removing it at the end of the run' in out and 'removed volume' in out
    assert out.index('stopping') < out.index('copying the content')
    assert not client.volumes.list(filters={'name': f'{b.prefix}-one'})
    [archive] = (b.directory / 'var' / 'backups').glob('*.tar')
    assert archive.stat().st_size > 0
    assert read(f'{b.prefix}-two', 'state') == b'kept' * 100
    assert read(f'{b.prefix}-two', 'last') == b'bye\n'   # written as the old one stopped
    mounts = client.containers.get(f'{b.prefix}-app-two').attrs['Mounts']
    assert [m['Name'] for m in mounts] == [f'{b.prefix}-two']
    before = ids(client, b)
    b.run('-N')
    assert ids(client, b) == before


def test_foreign_volume_with_the_same_name_is_not_touched(buildout, client):
    b = buildout
    foreign = client.volumes.create(f'{b.prefix}-data')
    try:
        b.write(volume_cfg(b))
        out = b.fail('-N')
        assert f"data: volume '{b.prefix}-data' already exists and was not made by this buildout" in out
        assert 'Traceback' not in out
    finally:
        foreign.remove()


def test_two_buildouts_with_the_same_part_names_do_not_share(make_buildout, client):
    one, two = make_buildout('one'), make_buildout('two')
    one.write(volume_cfg(one))
    two.write(volume_cfg(one))  # the same volume name
    one.run('-N')
    out = two.fail('-N')
    assert 'belongs to the buildout in' in out


def used_volume_cfg(b, busybox: str, **volume: str) -> str:
    from helpers import buildout_config, section, sleeper
    return buildout_config(
        ['data', 'app'],
        section('data', 'docker.volume', name=f'{b.prefix}-data', **volume),
        sleeper('app', busybox, name=f'{b.prefix}-app', volumes='${data:name}:/data'))


def test_label_change_of_a_volume_its_own_containers_use_happens_in_one_run(
        buildout, client, busybox):
    from helpers import actions
    b = buildout
    b.write(used_volume_cfg(b, busybox, labels='tier=one'))
    b.run('-N')
    write_volume_file(client, f'{b.prefix}-data', 'state', b'kept across the change')
    before = volume_digest(client, f'{b.prefix}-data')
    for _ in range(2):
        assert actions(b.run('-N').stdout) == []
    b.write(used_volume_cfg(b, busybox, labels='tier=two'))
    out = b.run('-N').stdout
    assert 'recreating volume' in out and 'labels changed' in out, out
    assert client.volumes.get(f'{b.prefix}-data').attrs['Labels']['tier'] == 'two'
    assert volume_digest(client, f'{b.prefix}-data') == before
    app = client.containers.get(f'{b.prefix}-app')
    assert app.status == 'running'
    assert app.exec_run('cat /data/state').output == b'kept across the change'
    assert len(list((b.directory / 'var' / 'backups').glob('*.tar'))) == 1
    settled = ids(client, b)
    for _ in range(2):
        assert actions(b.run('-N').stdout) == []
        assert ids(client, b) == settled
    assert len(list((b.directory / 'var' / 'backups').glob('*.tar'))) == 1


def test_an_unknown_volume_driver_is_named_and_changes_nothing(buildout, client, busybox):
    b = buildout
    b.write(used_volume_cfg(b, busybox))
    b.run('-N')
    app = client.containers.get(f'{b.prefix}-app').id
    b.write(used_volume_cfg(b, busybox, driver='nosuchdriver'))
    out = b.fail('-N')
    errors = [line for line in out.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and 'data: option driver: expected a volume driver this engine has' \
        in errors[0] and 'nosuchdriver' in errors[0], out
    assert client.containers.get(f'{b.prefix}-app').id == app
    assert not list((b.directory / 'var' / 'backups').glob('*.tar'))


def two_volumes_cfg(b, parts: str = 'secrets data') -> str:
    """``secrets``: disposable content (``archive = false``); ``data``: the default."""
    from helpers import buildout_config, section
    return buildout_config(
        parts.split(),
        section('secrets', 'docker.volume', name=f'{b.prefix}-secrets', keep='false',
                archive='false'),
        section('data', 'docker.volume', name=f'{b.prefix}-data', keep='false'))


def backups(b) -> list[str]:
    """Every file in the backup directory (archives, checksums, markers)."""
    directory = b.directory / 'var' / 'backups'
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_archive_false_removes_the_volume_without_an_archive_and_the_default_archives(
        buildout, client):
    """A builder machine's private keys leave with their part: ``archive = false`` removes
    the volume and its content with no archive on this machine's disk, where a volume
    without it is archived first, as ever."""
    from helpers import actions, plan
    b = buildout
    b.write(two_volumes_cfg(b))
    b.run('-N')
    write_volume_file(client, f'{b.prefix}-secrets', 'builder-2.pem', b'PRIVATE KEY', mode=0o600)
    write_volume_file(client, f'{b.prefix}-data', 'rows', b'precious')
    for _ in range(2):  # reruns change nothing and archive nothing
        assert actions(b.run('-N').stdout) == []
    assert backups(b) == []

    b.write(two_volumes_cfg(b, parts=''))
    planned = plan(b)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert f'remove volume {b.prefix}-secrets: its part was removed, its content goes with ' \
        f'it, without an archive (archive = false)' in planned.stdout, planned.stdout
    assert f'remove volume {b.prefix}-data: its part was removed, its content is archived ' \
        f'first' in planned.stdout, planned.stdout
    out = b.run('-N').stdout
    assert f'removed volume {b.prefix}-secrets and its content, without an archive ' \
        f'(archive = false)' in out, out
    assert not client.volumes.list(filters={'name': f'{b.prefix}-secrets'})
    assert not client.volumes.list(filters={'name': f'{b.prefix}-data'})
    [archive, checksum] = backups(b)
    assert archive.startswith(f'{b.prefix}-data-') and archive.endswith('.tar'), backups(b)
    assert checksum == archive + '.sha256'
    assert b'PRIVATE KEY' not in b''.join(p.read_bytes() for p in b.directory.rglob('*')
                                           if p.is_file())
    out = b.run('-N').stdout
    assert actions(out) == [] and len(backups(b)) == 2, out


def test_archive_false_carries_the_content_over_and_keeps_no_archive(buildout, client):
    """A volume made anew (its labels changed) or renamed keeps its content; with
    ``archive = false`` no archive of it stays behind, and the old name goes without one."""
    from helpers import actions, buildout_config, section
    b = buildout

    def config(name: str, labels: str) -> str:
        return buildout_config(['secrets'], section(
            'secrets', 'docker.volume', name=f'{b.prefix}-{name}', labels=labels, keep='false',
            archive='false'))

    b.write(config('one', 'tier=one'))
    b.run('-N')
    write_volume_file(client, f'{b.prefix}-one', 'a.pem', b'key a', mode=0o600)
    before = volume_digest(client, f'{b.prefix}-one')
    b.write(config('one', 'tier=two'))
    out = b.run('-N').stdout
    assert 'recreating volume' in out and 'removed the archive' in out, out
    assert client.volumes.get(f'{b.prefix}-one').attrs['Labels']['tier'] == 'two'
    assert volume_digest(client, f'{b.prefix}-one') == before
    assert backups(b) == []

    b.write(config('two', 'tier=two'))
    out = b.run('-N').stdout
    assert 'copying the content' in out and f'removed volume {b.prefix}-one and its content, ' \
        f'without an archive' in out, out
    assert not client.volumes.list(filters={'name': f'{b.prefix}-one'})
    assert volume_digest(client, f'{b.prefix}-two') == before
    assert backups(b) == []
    assert actions(b.run('-N').stdout) == []

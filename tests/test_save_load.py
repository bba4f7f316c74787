"""docker.save and docker.load (dockeroo's): images carried to engines with no registry."""
from __future__ import annotations

import contextlib
import os

import docker.errors
import pytest

from helpers import buildout_config, context_build_part, section

pytestmark = pytest.mark.slow


def save_cfg(b, parts: str = 'app save', version: str = 'one', keep: str = 'false') -> str:
    return buildout_config(
        parts.split(), context_build_part(b, build_args=f'VERSION={version}'),
        section('save', 'docker.save', name='${app:image}',
                path='${buildout:directory}/images/app.tar', keep=keep))


def load_cfg(b, path: str, parts: str = 'load') -> str:
    return buildout_config(parts.split(), section('load', 'docker.load',
                                                  name=f'{b.prefix}/carried:v1', path=path))


def test_save_rewrites_the_file_only_when_the_image_changed(buildout, client, busybox):
    b = buildout
    (b.directory / 'app').mkdir()
    (b.directory / 'app' / 'Dockerfile').write_text(
        f'FROM {busybox}\nARG VERSION\nRUN echo $VERSION > /version\n')
    tar = b.directory / 'images' / 'app.tar'
    b.write(save_cfg(b))
    out = b.run('-N').stdout
    assert f'saving {b.prefix}/app:latest' in out
    first = tar.stat()
    for _ in range(2):
        out = b.run('-N').stdout
        assert 'Installing' not in out and 'Uninstalling' not in out, out
        assert 'saving' not in out
        assert tar.stat().st_mtime_ns == first.st_mtime_ns, 'an unchanged image is not saved again'

    # A new image: the file is rewritten once, then left.
    b.write(save_cfg(b, version='two'))
    assert 'the image changed' in b.run('-N').stdout
    assert tar.stat().st_mtime_ns != first.st_mtime_ns
    second = tar.stat()
    assert 'saving' not in b.run('-N').stdout
    assert tar.stat().st_mtime_ns == second.st_mtime_ns

    # A file removed by hand is written again.
    tar.unlink()
    assert 'the file was missing' in b.run('-N').stdout
    assert tar.exists()

    # Removing the part removes the file (keep = false, dockeroo's default).
    b.write(save_cfg(b, parts='app'))
    b.run('-N')
    assert not tar.exists()


def test_load_loads_again_only_when_the_file_changed(buildout, client, busybox, tmp_path):
    b = buildout
    ref = f'{b.prefix}/carried:v1'
    made: list[str] = []
    try:
        def archive(text: str) -> str:
            (tmp_path / 'ctx').mkdir(exist_ok=True)
            (tmp_path / 'ctx' / 'Dockerfile').write_text(f'FROM {busybox}\nRUN echo {text} > /what\n')
            image, _ = client.images.build(path=str(tmp_path / 'ctx'), tag=ref, rm=True)
            made.append(image.id)
            path = tmp_path / 'carried.tar'
            with open(path, 'wb') as out:
                for chunk in client.images.get(ref).save(named=True):
                    out.write(chunk)
            client.images.remove(ref)   # the engine that loads it has never seen it
            return image.id

        first = archive('one')
        b.write(load_cfg(b, str(tmp_path / 'carried.tar')))
        out = b.run('-N').stdout
        assert f'loading {ref}' in out
        assert client.images.get(ref).id == first
        installed = (b.directory / '.installed.cfg').read_text()
        assert f'image-id = {first}' in installed
        for _ in range(2):
            out = b.run('-N').stdout
            assert 'loading' not in out and 'Installing' not in out, out

        # The tag removed by hand is loaded again, with no reinstall.
        client.images.remove(ref)
        out = b.run('-N').stdout
        assert 'loading' in out and 'Installing' not in out
        assert client.images.get(ref).id == first

        # Another file at the same path: another configuration, loaded once.
        second = archive('two')
        out = b.run('-N').stdout
        assert 'loading' in out
        assert client.images.get(ref).id == second
        assert 'loading' not in b.run('-N').stdout

        # Removing the part removes the tag it loaded.
        b.write(load_cfg(b, str(tmp_path / 'carried.tar'), parts=''))
        b.run('-N')
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(ref)
    finally:
        for image in made:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image, force=True)


def test_load_of_a_file_that_is_no_image_archive_is_one_line(buildout, tmp_path):
    b = buildout
    (tmp_path / 'junk.tar').write_bytes(b'not a tar file at all' * 100)
    b.write(load_cfg(b, str(tmp_path / 'junk.tar')))
    out = b.fail('-N')
    assert 'load: option path: expected a tar file from docker save' in out
    assert 'Traceback' not in out
    b.write(load_cfg(b, str(tmp_path / 'missing.tar')))
    assert 'load: option path: expected an existing file' in b.fail('-N')


def test_dockeroo_machine_create_stops_with_what_to_use_instead(buildout):
    b = buildout
    b.write('''
        [buildout]
        parts = machine

        [machine]
        recipe = dockeroo_nagoya:machine.create
        engine-driver = virtualbox
        ''')
    out = b.fail('-N')
    line = [text for text in out.splitlines() if 'machine: recipe machine.create' in text]
    assert line and 'docker-host' in line[0] and 'Docker context' in line[0], out
    assert 'Traceback' not in out and 'not found' not in out
    assert not os.path.exists(b.directory / 'parts' / 'machine')

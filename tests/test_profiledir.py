"""``profile-directory``: the directory of the file that defines a part, for a profile's
own files, whichever directory the buildout that extends the profile is in."""
from __future__ import annotations

import configparser


def test_the_directory_is_the_profiles_not_the_buildouts(buildout, tmp_path):
    b = buildout
    shared = tmp_path / 'shared'
    (shared / 'files').mkdir(parents=True)
    (shared / 'lab.cfg').write_text('[buildout]\nparts = lab-files\n\n'
                                    '[lab-files]\nrecipe = dockeroo_nagoya:profile-directory\n'
                                    'path = files\n')
    # The extending buildout overrides an option of the section: the profile still defines it.
    b.write(f'[buildout]\nextends = {shared / "lab.cfg"}\n\n[lab-files]\npath = files/\n')
    b.run('-N')
    installed = configparser.RawConfigParser()
    installed.read(b.directory / '.installed.cfg')
    assert installed.get('lab-files', 'directory') == str(shared)
    assert installed.get('lab-files', 'location') == str(shared / 'files')


def test_a_path_that_is_not_beside_the_profile_is_one_line(buildout):
    b = buildout
    b.write('[buildout]\nparts = lab-files\n\n'
            '[lab-files]\nrecipe = dockeroo_nagoya:profile-directory\npath = missing\n')
    out = b.fail('-N')
    assert f'lab-files: option path: a directory beside {b.directory / "buildout.cfg"}' in out, out

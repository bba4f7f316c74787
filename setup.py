"""dockeroo_nagoya: zc.buildout recipes that build and run systems of Docker containers."""
from setuptools import find_packages, setup

RECIPES = {
    'docker.volume': 'volume:VolumeRecipe',
    'docker.network': 'network:NetworkRecipe',
    'docker.pull': 'pull:PullRecipe',
    'docker.build': 'build:BuildRecipe',
    'docker.service': 'service:ServiceRecipe',
    'docker.push': 'push:PushRecipe',
    'docker.command': 'command:CommandRecipe',
    'docker.run': 'run:RunRecipe',
    'docker.copy': 'copy:CopyRecipe',
    'docker.bootstrap': 'bootstrap:BootstrapRecipe',
    'docker.gentoo-bootstrap': 'bootstrap:BootstrapRecipe',
    'docker.assemble': 'assemble:AssembleRecipe',
    'docker.gentoo-build': 'assemble:AssembleRecipe',
    'docker.diskimage': 'diskimage:DiskImageRecipe',
    'docker.gentoo-diskimage': 'diskimage:DiskImageRecipe',
    'docker.system': 'system:SystemRecipe',
    'docker.commit': 'commit:CommitRecipe',
    'docker.persist': 'persist:PersistRecipe',
    'docker.image': 'image:ImageFromOptionsRecipe',
    'docker.temporary': 'temporary:TemporaryRecipe',
    'docker.control': 'control:ControlRecipe',
    # The directory of the file that defines a section (a profile's own files).
    'profile-directory': 'profiledir:ProfileDirectoryRecipe',
    'docker.save': 'save:SaveRecipe',
    'docker.load': 'load:LoadRecipe',
    # dockeroo's docker-machine recipe: stops with one line naming what to use instead.
    'machine.create': 'retired:MachineCreateRecipe',
}


def entry_points() -> dict[str, list[str]]:
    """One install and one uninstall entry point per recipe (and alias)."""
    install, uninstall = [], []
    for name, target in sorted(RECIPES.items()):
        module, cls = target.split(':')
        install.append(f'{name} = dockeroo_nagoya.recipes.{module}:{cls}')
        uninstall.append(f'{name} = dockeroo_nagoya.recipes.{module}:uninstall')
    return {'zc.buildout': install, 'zc.buildout.uninstall': uninstall,
            # Parts made once per line of a list (builder machines): dockeroo_nagoya.model.foreach.
            'zc.buildout.extension': ['dockeroo_nagoya = dockeroo_nagoya.model.foreach:extension'],
            # What a run would do, and why, before anything is done (issue 16).
            'console_scripts': ['dockeroo-plan = dockeroo_nagoya.cli.plan:entry']}


with open('README.rst', encoding='utf-8') as readme:
    LONG_DESCRIPTION = readme.read()

setup(
    name='dockeroo_nagoya',
    version='0.1.0.dev0',
    description=__doc__,
    long_description=LONG_DESCRIPTION,
    long_description_content_type='text/x-rst',
    license='Apache-2.0',
    packages=find_packages(include=['dockeroo_nagoya', 'dockeroo_nagoya.*']),
    python_requires='>=3.11',
    # zc.buildout runs the recipes, so it is not required here: every requirement is
    # resolved again for each part of every run (see bench/), and pip would pin it.
    install_requires=[
        'docker>=7,<8',
    ],
    # mypy and docker-py's stubs, pinned: tests/test_typing.py fails on any type error, so a
    # new release must not change the verdict on unchanged code.
    extras_require={'test': ['pytest>=8', 'pytest-xdist>=3', 'zc.recipe.egg==6.0.0', 'bcrypt',
                             'mypy==2.4.1', 'types-docker==7.2.0.20261102'],
                    # make docs (Sphinx), and CI's check of the PyPI page (twine check of
                    # a distribution that build makes).
                    'docs': ['sphinx>=7', 'twine>=5', 'build>=1']},
    entry_points=entry_points(),
    classifiers=[
        'Framework :: Buildout :: Recipe',
        'Programming Language :: Python :: 3.11',
    ],
)

"""The documentation cannot drift from the code: every recipe has its page, each page's
option table is the recipe's own, the site builds without a warning, the README's links
land on pages of the site, and every buildout example of the README and of the pages
runs against the real engine (install, a rerun that changes nothing, removal)."""
from __future__ import annotations

import ast
import html.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from conftest import PROJECT
from dockeroo_nagoya.model.engine_options import ENGINE_OPTION_DOCS, ENGINE_OPTIONS
from helpers import ids

DOCS = PROJECT / 'docs'
RECIPE_PAGES = DOCS / 'recipes'
README = PROJECT / 'README.rst'
#: Where the README says the site lives; its links are checked against the built site.
SITE_URL = 'https://dockeroo-nagoya.readthedocs.io/en/latest/'
HEADINGS = ('Synopsis', 'Options', 'Exposes', 'When it changes', 'On removal', 'Example')
DIRECTIVE_RE = re.compile(r'^\.\. recipe-options:: (\S+)\s*$', re.M)
#: Pages whose examples are not run, and why.
NOT_RUN = {
    'koji.rst': "the Koji profile needs Koji's server images (DN_KOJI_IMAGE), which no "
                'registry here serves; tests/test_koji.py runs the profile when they exist',
}


def recipes() -> dict[str, str]:
    """setup.py's RECIPES (entry point -> module:Class), read without running setup()."""
    tree = ast.parse((PROJECT / 'setup.py').read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'RECIPES':
            return ast.literal_eval(node.value)
    raise AssertionError('setup.py has no RECIPES')


def recipe_class(entry_point: str):
    for found in importlib.metadata.entry_points(group='zc.buildout'):
        if found.name == entry_point and found.value.startswith('dockeroo_nagoya.'):
            return found.load()
    raise AssertionError(f'{entry_point} is not an installed entry point')


def pages_by_entry_point() -> dict[str, list[Path]]:
    """entry point -> the recipe pages that render its option table."""
    found: dict[str, list[Path]] = {}
    for page in sorted(RECIPE_PAGES.glob('*.rst')):
        for name in DIRECTIVE_RE.findall(page.read_text()):
            found.setdefault(name, []).append(page)
    return found


# -- pages and option tables ------------------------------------------------------------
def test_every_recipe_has_its_page_with_the_same_headings():
    pages = pages_by_entry_point()
    missing = sorted(set(recipes()) - set(pages))
    assert not missing, f'entry points without a page (.. recipe-options:: NAME): {missing}'
    unknown = sorted(set(pages) - set(recipes()))
    assert not unknown, f'pages render tables of recipes setup.py does not have: {unknown}'
    for name, found in pages.items():
        assert len(set(found)) == 1, f'{name} has more than one page: {found}'
        text = found[0].read_text()
        headings = [line for line, under in zip(text.splitlines(), text.splitlines()[1:])
                    if under and set(under) == {'-'} and len(under) >= len(line) > 0]
        assert tuple(headings[:len(HEADINGS)]) == HEADINGS, (found[0].name, headings)


def test_aliases_share_a_page():
    by_target: dict[str, set[Path]] = {}
    pages = pages_by_entry_point()
    for name, target in recipes().items():
        by_target.setdefault(target, set()).update(pages[name])
    assert all(len(found) == 1 for found in by_target.values()), by_target


def test_every_option_of_every_recipe_has_a_description():
    from dockeroo_nagoya.recipes.system import MEMBER_TABLE
    undocumented = [f'{name}: {option.name}' for name in recipes()
                    for option in getattr(recipe_class(name), 'table', ())
                    if not option.doc.strip()]
    undocumented += [f'docker.system member: {o.name}' for o in MEMBER_TABLE if not o.doc]
    assert not undocumented
    assert set(ENGINE_OPTION_DOCS) == set(ENGINE_OPTIONS)


def test_secret_references_are_marked():
    for name in recipes():
        for option in getattr(recipe_class(name), 'table', ()):
            if option.name in ('password-env', 'password-file', 'env-file'):
                assert option.secret, f'{name}: {option.name} is a secret reference'


class Rows(html.parser.HTMLParser):
    """The first cell of every option-table row of a page, per table."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[str]] = []
        self.cell = -1
        self.text = ''

    def handle_starttag(self, tag: str, attrs) -> None:
        classes = (dict(attrs).get('class') or '').split()
        if tag == 'table' and 'option-table' in classes:
            self.tables.append([])
        elif tag == 'tr' and 'option-row' in classes:
            self.cell = 0
        elif tag == 'td' and self.cell >= 0:
            self.cell += 1
            self.text = ''

    def handle_endtag(self, tag: str) -> None:
        if tag == 'td' and self.cell == 1:
            self.tables[-1].append(self.text.strip())
        elif tag == 'tr':
            self.cell = -1

    def handle_data(self, data: str) -> None:
        if self.cell == 1:
            self.text += data


def option_tables(page: Path) -> list[list[str]]:
    parser = Rows()
    parser.feed(page.read_text())
    return parser.tables


@pytest.fixture(scope='module')
def site(tmp_path_factory) -> Path:
    """The site as ``make docs`` builds it (warnings are errors)."""
    out = tmp_path_factory.mktemp('site')
    result = subprocess.run([sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q',
                             '-b', 'html', str(DOCS), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f'sphinx-build:\n{result.stdout}{result.stderr}'
    return out


def test_each_page_lists_exactly_the_options_its_recipe_knows(site):
    from dockeroo_nagoya.recipes.system import MEMBER_TABLE
    for name, (page,) in ((n, tuple(set(p))) for n, p in pages_by_entry_point().items()):
        tables = option_tables(site / 'recipes' / page.with_suffix('.html').name)
        table = getattr(recipe_class(name), 'table', ())
        wanted = [option.name for option in table]
        if not wanted:
            continue
        assert wanted in tables, f'{page.name}: no table of {name} with {wanted}; has {tables}'
    members = option_tables(site / 'recipes' / 'system.html')
    assert [option.name for option in MEMBER_TABLE] in members


def test_the_readme_is_short_and_its_links_are_pages_of_the_site(site):
    text = README.read_text()
    assert len(text.encode()) <= 15 * 1024
    links = re.findall(re.escape(SITE_URL) + r'[^\s>`]*', text)
    assert len(links) > 20
    for link in links:
        page, _, anchor = link[len(SITE_URL):].partition('#')
        page = page or 'index.html'
        built = site / page
        assert built.is_file(), f'README links {link}: no {page} in the built site'
        if anchor:
            assert f'id="{anchor}"' in built.read_text(), f'README links {link}: no #{anchor}'


# -- examples that run --------------------------------------------------------------
class Example(NamedTuple):
    page: str
    number: int
    config: str
    files: dict[str, str]

    @property
    def id(self) -> str:
        return f'{self.page}#{self.number}'


def literal_blocks(text: str) -> Iterator[tuple[str | None, str]]:
    """(caption, content) of every literal block: ``::`` paragraphs and code-blocks."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith('::') and not line.lstrip().startswith('.. ') or \
                line.lstrip().startswith('.. code-block::'):
            indent = len(line) - len(line.lstrip())
            caption = None
            i += 1
            while i < len(lines) and lines[i].strip().startswith(':'):
                key, _, value = lines[i].strip()[1:].partition(':')
                if key == 'caption':
                    caption = value.strip()
                i += 1
            body = []
            while i < len(lines) and (not lines[i].strip()
                                      or len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i])
                i += 1
            block = '\n'.join(body).strip('\n')
            if block:
                yield caption, textwrap.dedent(block) + '\n'
            continue
        i += 1


def examples() -> list[Example]:
    """Every buildout configuration (a block starting ``[buildout]``) of the README and
    the documentation, with the files the same page shows under a caption."""
    found = []
    for path in [README, *sorted(DOCS.glob('*.rst')), *sorted(RECIPE_PAGES.glob('*.rst'))]:
        blocks = list(literal_blocks(path.read_text()))
        files = {caption: body for caption, body in blocks if caption}
        configs = [body for caption, body in blocks
                   if not caption and body.startswith('[buildout]')]
        for index, config in enumerate(configs):
            found.append(Example(str(path.relative_to(PROJECT)), index, config, files))
    return found


EXAMPLES = examples()


def test_the_examples_are_found():
    """So a change of the extraction that finds none does not pass for all of them."""
    pages = {example.page for example in EXAMPLES}
    assert 'README.rst' in pages
    assert {f'docs/recipes/{page.name}' for page in RECIPE_PAGES.glob('*.rst')
            if page.name not in ('index.rst', 'machine-create.rst')} <= pages
    assert len(EXAMPLES) >= 25


def image_swaps(text: str, request) -> dict[str, str]:
    """Docker Hub's images the example names -> the tests' local ones (nothing is pulled)."""
    swaps = {}
    if 'busybox:latest' in text:
        swaps['busybox:latest'] = request.getfixturevalue('busybox')
    if 'debian:bookworm' in text:
        swaps['debian:bookworm'] = request.getfixturevalue('debian')
    return swaps


def localised(text: str, swaps: dict[str, str]) -> str:
    for hub, local in swaps.items():
        text = re.sub(r'(?<![\w./-])' + re.escape(hub), local, text)
    return text


@pytest.mark.parametrize('example', [
    pytest.param(e, id=e.id, marks=[pytest.mark.skip(reason=NOT_RUN[Path(e.page).name])]
                 if Path(e.page).name in NOT_RUN else [])
    for e in EXAMPLES])
def test_the_example_runs_reruns_as_a_no_op_and_is_removed(example, buildout, client, request):
    """Only Docker Hub's images are swapped for local ones (and, for the push example, the
    registry for the tests' own; the README's pin of this egg's release for the checkout)."""
    b = buildout
    config = example.config
    whole = config + ''.join(example.files.values())
    swaps = image_swaps(whole, request)
    if 'localhost:5000' in config:
        swaps['localhost:5000'] = request.getfixturevalue('registry')
    if 'docker.service' in config:
        request.getfixturevalue('swarm')
    config = re.sub(r'(?m)^dockeroo_nagoya = .*\n', '', config)
    for name, body in example.files.items():
        path = b.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(localised(body, swaps))
        if body.startswith('#!'):
            path.chmod(0o755)
    b.write(localised(config, swaps))
    b.run('-N')
    before = ids(client, b)
    rerun = b.run('-N')
    assert not re.search(r'^(Installing|Uninstalling) ', rerun.stdout + rerun.stderr, re.M), \
        rerun.stdout + rerun.stderr
    assert ids(client, b) == before
    b.write(re.sub(r'(?m)^parts =.*(\n[ \t]+.*)*', 'parts =', localised(config, swaps), 1))
    b.run('-N')
    assert [c.name for c in b.owned('containers')] == []


# -- a look in a real browser -------------------------------------------------------
def chromium() -> str | None:
    return shutil.which('chromium') or shutil.which('chromium-browser')


def browse(site: Path, page: str, *args: str) -> subprocess.CompletedProcess[str]:
    browser = chromium()
    assert browser
    profile = tempfile.mkdtemp(prefix='dn-chromium-')
    try:
        return subprocess.run(
            [browser, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
             '--no-first-run', '--disable-background-networking', '--disable-component-update',
             '--disable-sync', f'--user-data-dir={profile}', *args,
             (site / page).as_uri()],
            capture_output=True, text=True, timeout=120, cwd=profile)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(not chromium(), reason='chromium is not installed (apt-get install chromium)')
@pytest.mark.parametrize('page', ['recipes/index.html', 'recipes/run.html'])
def test_a_browser_renders_the_pages_and_their_tables(site, page, tmp_path):
    dom = browse(site, page, '--dump-dom')
    assert dom.returncode == 0, dom.stderr
    if page == 'recipes/index.html':
        assert 'recipe-index' in dom.stdout
        for name in recipes():
            assert f'>{name}<' in dom.stdout, name
    else:
        rows = re.findall(r'<tr class="option-row[^"]*">', dom.stdout)
        assert len(rows) == len(recipe_class('docker.run').table)
        assert '>wait-for<' in dom.stdout
    shot = tmp_path / 'page.png'
    result = browse(site, page, '--screenshot=' + str(shot), '--window-size=1280,1600',
                    '--hide-scrollbars')
    assert result.returncode == 0, result.stderr
    assert shot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and shot.stat().st_size > 20_000
    if os.environ.get('DN_KEEP_SCREENSHOTS'):
        shutil.copy(shot, Path(os.environ['DN_KEEP_SCREENSHOTS']) / page.replace('/', '-'))

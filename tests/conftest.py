"""Shared fixtures: the real sample in data/, built databases, tiny posts."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hostile import HostileBuild, build_hostile_site
from postsdb.build import build
from postsdb.serve import free_port, running_server, write_inspect_file

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
# The project's default dataset is a real sample of the archive: the seed post and 150 posts.
CORPUS = DATA
CORPUS_SOURCES = [CORPUS / "seed", CORPUS / "posts"]
SEED_PATH = "seed/000_4a1463b1f05834cd.txt"
SEED_URL = "https://www.rfa.org/mandarin/yataibaodao/meiti/ql2-09062021062321.html"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def corpus_sources() -> list[Path]:
    return CORPUS_SOURCES


@pytest.fixture(scope="session")
def data_db(tmp_path_factory) -> Path:
    """The project's own data/ folder, built once per session. Treat it as read-only."""
    db_path = tmp_path_factory.mktemp("data") / "posts.db"
    build([DATA], db_path)
    return db_path


@pytest.fixture(scope="session")
def corpus_db(data_db) -> Path:
    """The real sample, built: the same database as `data_db`."""
    return data_db


def make_post(
    folder: Path,
    name: str = "2021-01-01-post.md",
    title: str = "标题",
    date: str = "2021-01-01T00:00:00Z",
    url: str = "https://example.com/a",
    body: str = "<p>正文</p>",
    extra: str = "",
) -> Path:
    """Write a small Jekyll post into `folder` and return its path."""
    front = f'---\nlayout: post\ntitle: "{title}"\ndate: {date}\nauthor: 作者\nfrom: {url}\ntags: [ 测试 ]\ncategories: [ 测试 ]\n{extra}---\n'
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(front + textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture
def post_folder(tmp_path) -> Path:
    folder = tmp_path / "posts"
    folder.mkdir()
    return folder


def copy_corpus(target: Path) -> list[Path]:
    """A writable copy of the corpus, for tests that change files."""
    sources = []
    for source in CORPUS_SOURCES:
        shutil.copytree(source, target / source.name)
        sources.append(target / source.name)
    return sources


# --- costly fixtures, each made once per session -------------------------------------
#
# A session-scoped fixture runs once per session only when it lives here: imported into a
# test module, it runs again for each module that imports it.


@pytest.fixture(scope="session")
def data_site(data_db):
    """The real `build_db.py serve` of the session's `data_db` on 127.0.0.1: its base URL."""
    with running_server(data_db) as base:
        yield base


@pytest.fixture(scope="session")
def data_inspect(data_db, tmp_path_factory) -> Path:
    """`datasette inspect` of `data_db`, for a Datasette built in the test (make_datasette)."""
    return write_inspect_file(data_db, tmp_path_factory.mktemp("data-inspect") / "inspect.json")


@pytest.fixture(scope="session")
def site_db(tmp_path_factory) -> Path:
    """Three made-up posts (rich, second, hostile) and the seed post (test_serve.build_site)."""
    from test_serve import build_site

    return build_site(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="session")
def site_inspect(site_db, tmp_path_factory) -> Path:
    return write_inspect_file(site_db, tmp_path_factory.mktemp("inspect") / "inspect.json")


@pytest.fixture(scope="session")
def hostile_build(tmp_path_factory) -> HostileBuild:
    """tests/hostile.py's suite, its good posts and the attack posts, built once by the real
    CLI: test_hostile.py checks the build, test_security_browser.py what a browser sees."""
    return build_hostile_site(tmp_path_factory.mktemp("hostile"), free_port())


# --- the browser: one headless Chromium for the session ---------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
VIEWPORT = {"width": 1000, "height": 900}
# Collects the policy violations the browser reports to the page (`securitypolicyviolation`
# events, in no particular wording), from the first script on; read them from window.__csp.
VIOLATIONS_JS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));
"""
CANARY = "window.__canary === undefined ? null : String(window.__canary)"  # set by a script that ran


def chromium_path() -> Path | None:
    """Debian's chromium: /usr/bin/chromium, or `chromium` on the PATH."""
    found = shutil.which("chromium")
    if found:
        return Path(found)
    return CHROMIUM if CHROMIUM.exists() else None


@pytest.hookimpl(trylast=True)  # after any shuffling (pytest-randomly): keep its order within each part
def pytest_collection_modifyitems(config, items):
    """Tests that use the browser run last, after every asyncio test: while the session's
    Chromium is up, playwright's sync API keeps its event loop as the main thread's running
    loop, and pytest-asyncio cannot start one there."""
    uses_browser = [item for item in items if "browser" in getattr(item, "fixturenames", ())]
    if uses_browser:
        chosen = set(map(id, uses_browser))
        items[:] = [item for item in items if id(item) not in chosen] + uses_browser


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session. Every test that uses it (through `page`
    or not) skips when chromium or the playwright package is missing."""
    chromium = chromium_path()
    if chromium is None:
        pytest.skip(f"no chromium: neither {CHROMIUM} nor `chromium` on the PATH (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def only_local(route):
    if urlsplit(route.request.url).hostname == "127.0.0.1":
        route.continue_()
    else:
        route.abort()


def local_context(browser, **options):
    """A fresh browser context that may only reach 127.0.0.1 (host names do not resolve
    either: CHROMIUM_ARGS)."""
    context = browser.new_context(viewport=VIEWPORT, service_workers="block", **options)
    context.route("**/*", only_local)
    return context


@pytest.fixture
def page(browser):
    """A page in a context of its own; each dialog is dismissed and its message kept in
    `page.dialogs`."""
    context = local_context(browser)
    page = context.new_page()
    page.dialogs = []

    def dismiss(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    yield page
    context.close()

"""Shared fixtures: the real sample in data/, built databases, tiny posts."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from postsdb.build import build

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
# The project's default dataset is a real sample of the archive: the seed post and 150 posts.
CORPUS = DATA
CORPUS_SOURCES = [CORPUS / "seed", CORPUS / "posts"]
SEED_PATH = "seed/000_4a1463b1f05834cd.txt"
SEED_URL = "https://www.rfa.org/mandarin/yataibaodao/meiti/ql2-09062021062321.html"



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

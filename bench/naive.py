"""The pipeline a user would write instead of build_db.py: the baseline for the benchmark.

python-frontmatter for the front matter, BeautifulSoup (html.parser) for the body,
sqlite-utils `insert_all` for the tables. It writes the same tables as the real build
(articles, article_bodies, images, links, tags, article_tags, article_files, problems)
with plain inserts: no incremental logic, no sanitizing; and, as a user would, SQLite's
default full-text search over titles and bodies (sqlite-utils `enable_fts`, FTS5 with its
default tokenizer), unless --no-fts.

    python bench/naive.py FOLDER_OR_FILE... --db naive.db [--no-fts]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import frontmatter
import sqlite_utils
from bs4 import BeautifulSoup

POST_SUFFIXES = {".md", ".markdown", ".html", ".htm", ".txt"}
CJK = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\u3000-\u303f]")
WORDS = re.compile("[^\\W\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+")
EPOCH = re.compile(r"^\s*<!--\s*(\d+|NaN)\s*-->")
CHROME = ["script", "style", "link", "meta", "nav", "footer", "aside", "header", "form", "button", "iframe", "noscript"]
TABLES = ("articles", "article_bodies", "images", "links", "tags", "article_tags", "article_files", "problems")
PKS = {
    "articles": "id",
    "article_bodies": "article_id",
    "images": ("article_id", "position"),
    "links": ("article_id", "position"),
    "tags": "id",
    "article_tags": ("article_id", "tag_id"),
    "article_files": "path",
    "problems": "path",
}


def find_posts(sources: list[Path]) -> list[Path]:
    files = []
    for source in sources:
        if source.is_file():
            files.append(source)
        else:
            files.extend(p for p in sorted(source.rglob("*")) if p.is_file() and p.suffix.lower() in POST_SUFFIXES)
    return files


def stable_id(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:7], "big") >> 3 or 1


def as_iso(value) -> str:
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    else:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_of(soup: BeautifulSoup):
    for tag in soup.find_all(CHROME):
        tag.decompose()
    return soup.find(class_="entry-content") or soup.find("article") or soup.find("main") or soup


def image_rows(root, article: int, base: str) -> list[dict]:
    rows = []
    for img in root.find_all("img"):
        src = img.get("src") or img.get("data-src")
        if not src or src.startswith("data:"):
            continue
        width, height = img.get("width", ""), img.get("height", "")
        rows.append(
            {
                "article_id": article,
                "position": len(rows),
                "src": urljoin(base, src.strip()),
                "alt": img.get("alt"),
                "title": img.get("title"),
                "caption": None,
                "width": int(width) if width.isdigit() else None,
                "height": int(height) if height.isdigit() else None,
            }
        )
    return rows


def link_rows(root, article: int, base: str) -> list[dict]:
    rows, home = [], urlsplit(base).hostname
    for a in root.find_all("a", href=True):
        try:
            href = urljoin(base, a["href"].strip())
            domain = urlsplit(href).hostname or ""
        except ValueError:
            continue
        text = a.get_text(" ", strip=True)
        rows.append(
            {"article_id": article, "position": len(rows), "href": href, "text": text, "domain": domain, "internal": int(domain == home)}
        )
    return rows


def load_post(path: Path, rows: dict[str, list]) -> None:
    """Parse one file and add its rows to `rows`."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    post = frontmatter.loads(data.decode("utf-8"))
    url = str(post["from"]).strip()
    article = stable_id(url)
    epoch = EPOCH.match(post.content)
    soup = BeautifulSoup(post.content, "html.parser")
    root = content_of(soup)
    images, links = image_rows(root, article, url), link_rows(root, article, url)
    text = root.get_text("\n", strip=True)
    published = as_iso(post["date"])
    tags = [str(t) for t in post.get("tags") or []]
    categories = [str(c) for c in post.get("categories") or []]
    rows["articles"].append(
        {
            "id": article,
            "title": str(post.get("title") or ""),
            "url": url,
            "published": published,
            "published_date": published[:10],
            "year": int(published[:4]),
            "month": published[:7],
            "author": post.get("author"),
            "source": (categories or tags or [urlsplit(url).hostname])[0],
            "tags": json.dumps(tags, ensure_ascii=False),
            "word_count": len(CJK.findall(text)) + len(WORDS.findall(text)),
            "image_count": len(images),
            "link_count": len(links),
            "path": str(path),
            "sha256": digest,
            "feed_published": epoch.group(1) if epoch else None,
        }
    )
    rows["article_bodies"].append({"article_id": article, "body_html": str(root), "body_text": text})
    rows["images"].extend(images)
    rows["links"].extend(links)
    for tag in tags:
        rows["tags"].append({"id": stable_id(tag), "name": tag})
        rows["article_tags"].append({"article_id": article, "tag_id": stable_id(tag)})
    rows["article_files"].append(
        {"path": str(path), "sha256": digest, "size": len(data), "article_id": article, "url": url, "published": published, "status": "kept"}
    )


def build_fts(db: sqlite_utils.Database) -> None:
    """The default a user reaches for: one FTS5 index per table, filled from its text."""
    db["articles"].enable_fts(["title"], fts_version="FTS5")
    db["article_bodies"].enable_fts(["body_text"], fts_version="FTS5")


def build(sources: list[Path], db_path: Path, fts: bool = True) -> dict[str, int]:
    """Parse every file, then insert every table; return the row counts."""
    rows: dict[str, list] = {table: [] for table in TABLES}
    for path in find_posts(sources):
        try:
            load_post(path, rows)
        except Exception as error:  # noqa: BLE001 - a user's script records and moves on
            rows["problems"].append({"path": str(path), "sha256": None, "size": None, "reason": repr(error)})
    db_path.unlink(missing_ok=True)
    db = sqlite_utils.Database(db_path)
    db["problems"].create({"path": str, "sha256": str, "size": int, "reason": str}, pk="path")
    for table in TABLES:
        if rows[table]:
            db[table].insert_all(rows[table], pk=PKS[table], replace=True)
    if fts:
        build_fts(db)
    db.close()
    return {table: len(rows[table]) for table in TABLES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path, help="folders (scanned recursively) or post files")
    parser.add_argument("--db", type=Path, default=Path("naive.db"), help="the SQLite database to write (replaced)")
    parser.add_argument("--fts", action=argparse.BooleanOptionalAction, default=True, help="build the default FTS (default: on)")
    args = parser.parse_args()
    started = time.perf_counter()
    counts = build(args.sources, args.db, args.fts)
    seconds = time.perf_counter() - started
    print(f"naive: {counts['article_files']} files, {counts['problems']} problem(s); {seconds:.2f} s; wrote {args.db}")
    print("rows: " + ", ".join(f"{table} {n}" for table, n in counts.items()))


if __name__ == "__main__":
    sys.exit(main())

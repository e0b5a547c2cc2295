"""The served site, as a reader and a researcher use it: pages, JSON, feed and download.

Most tests go through Datasette's test client with the project's metadata, plugins,
templates and settings, on a real database built from tiny posts written here. A few run
the real `build_db.py serve` on 127.0.0.1, and a few use the real sample in data/.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from datasette.app import Datasette
from selectolax.lexbor import LexborHTMLParser

from postsdb.build import build
from postsdb.parse import article_id
from postsdb.search import INDEX_TABLES, LEAD_CHARS
from postsdb.serve import METADATA, PLUGINS, PROJECT, SETTINGS, TEMPLATES, datasette_args, inspect_path
from postsdb.serve import CHOOSE_COMMAND, PORT_FROM_ENV, container_command, free_port, plain_commands, running_server, serve_options

DATA = PROJECT / "data"
METADATA_DICT = yaml.safe_load(METADATA.read_text(encoding="utf-8"))
QUERIES = METADATA_DICT["databases"]["posts"]["queries"]
PAGE_LIMIT = 150 * 1024

RICH_URL = "https://news.example.com/2023/05/rich"
SECOND_URL = "https://news.example.com/2022/12/second"
HOSTILE_URL = "https://evil.example/x"
RICH_ID, SECOND_ID, HOSTILE_ID = (article_id(u) for u in (RICH_URL, SECOND_URL, HOSTILE_URL))
RICH_SENTENCE = "第一段：这是富文本正文的第一段。"

RICH_BODY = """\
<div><p>第一段：这是富文本正文的第一段。</p>
<figure><img src="{image}" alt="示意图" width="64" height="64"><figcaption>图一：图片说明文字</figcaption></figure>
<p>第二段，含<a href="https://other.example.org/a">外部链接</a>和<a href="/2023/05/other">内部链接</a>。</p>
<p><img src="https://cdn.example.net/2.png" alt="第二张"></p></div>
"""
# Every way we know of to run script from a post body; the build must drop them all.
HOSTILE_TITLE = "<script>window.__canary='title'</script>恶意标题"
HOSTILE_BODY = """\
<div><p>第一段<script>window.__canary='script';alert(1)</script></p>
<p onclick="window.__canary='onclick'">第二段 <img src="https://evil.example/x.png" onerror="window.__canary='onerror';alert(2)" onload="window.__canary='onload'"></p>
<p><a href="javascript:window.__canary='js-link';alert(3)">点我</a> <a href="JaVaScRiPt:alert(4)">再点</a></p>
<svg onload="window.__canary='svg'"><circle r="5"/></svg>
<iframe srcdoc="<script>parent.__canary='iframe'</script>"></iframe>
<object data="javascript:alert(5)"></object><embed src="javascript:alert(6)">
<style>body{background:red}</style><form action="javascript:alert(7)"><button>go</button></form>
<img src="x" onerror="alert(8)"><details open ontoggle="window.__canary='ontoggle'">x</details>
<body onload="window.__canary='body'"><math><mtext><table><mglyph><style><img src=x onerror=alert(9)></style></mglyph></table></mtext></math>
</div>
"""


def write_post(folder: Path, name: str, *, title: str, date: str, url: str, author: str, tags, categories, body: str):
    tag_list = ", ".join(tags)
    category_list = ", ".join(categories)
    front = (
        f'---\nlayout: post\ntitle: "{title}"\ndate: {date}\nauthor: {author}\nfrom: {url}\n'
        f"tags: [ {tag_list} ]\ncategories: [ {category_list} ]\n---\n"
    )
    (folder / name).write_text(front + textwrap.dedent(body), encoding="utf-8")


def write_site_posts(folder: Path, image: str = "https://news.example.com/img/1.png") -> Path:
    """Three posts: one with figures and links, an older one of the same source, a hostile one."""
    folder.mkdir(parents=True, exist_ok=True)
    write_post(
        folder, "2023-05-06-rich.md", title="富文本测试：图片与链接", date="2023-05-06T07:08:09Z", url=RICH_URL,
        author="测试作者", tags=["测试", "图片", "样例"], categories=["样例新闻"], body=RICH_BODY.format(image=image),
    )  # fmt: skip
    write_post(
        folder, "2022-12-31-second.md", title="第二篇样例文章", date="2022-12-31T23:00:00Z", url=SECOND_URL,
        author="另一位作者", tags=["测试", "样例"], categories=["样例新闻"],
        body='<div><p>较早的一篇，链接到<a href="https://other.example.org/b">别处</a>。</p></div>\n',
    )  # fmt: skip
    write_post(
        folder, "2022-03-04-hostile.md", title=HOSTILE_TITLE, date="2022-03-04T05:06:07Z", url=HOSTILE_URL,
        author="<b onmouseover=alert(10)>坏人</b>", tags=["恶意"], categories=["恶意来源"], body=HOSTILE_BODY,
    )  # fmt: skip
    return folder


def build_site(folder: Path, image: str = "https://news.example.com/img/1.png") -> Path:
    db_path = folder / "posts.db"
    summary = build([DATA / "seed", write_site_posts(folder / "posts", image)], db_path)
    assert not summary.problems, summary.problems
    return db_path


def make_datasette(db: Path, inspect_file: Path, **settings) -> Datasette:
    """The same configuration `datasette_args` puts on the command line (`settings` added)."""
    return Datasette(
        immutables=[str(db)],
        inspect_data=json.loads(inspect_file.read_text()),
        metadata=copy.deepcopy(METADATA_DICT),  # Datasette writes into the dict it is given
        plugins_dir=str(PLUGINS),
        template_dir=str(TEMPLATES),
        settings={**SETTINGS, **settings},
        cors=True,
    )


@pytest.fixture
def ds(site_db, site_inspect) -> Datasette:
    return make_datasette(site_db, site_inspect)


async def get_json(ds: Datasette, path: str, status: int = 200):
    response = await ds.client.get(path)
    assert response.status_code == status, (path, response.text[:500])
    return response.json()


async def get_html(ds: Datasette, path: str) -> str:
    response = await ds.client.get(path)
    assert response.status_code == 200, (path, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def article_body_html(page: str) -> str:
    start = page.index('<div class="article-body">')
    return page[start : page.index("</article>", start)]


# --- configuration ---------------------------------------------------------------


async def test_project_plugins_are_loaded(ds):
    names = {plugin["name"] for plugin in await get_json(ds, "/-/plugins.json")}
    assert {"article_page.py", "html_cells.py", "datasette-atom"} <= names


async def test_settings_are_in_force(corpus_ds_files):
    """What each setting does, on the real sample (151 articles)."""
    db, _ = corpus_ds_files
    ds = make_datasette(*corpus_ds_files)
    with sqlite3.connect(db) as conn:
        (articles,) = conn.execute("select count(*) from articles").fetchone()
    assert articles > SETTINGS["default_page_size"]
    response = await ds.client.get("/posts/articles.json?_shape=objects")
    page = response.json()
    assert len(page["rows"]) == SETTINGS["default_page_size"] and page["next"]
    assert page["suggested_facets"] == []  # suggest_facets: off
    assert response.headers["cache-control"] == f"max-age={SETTINGS['default_cache_ttl']}"
    many = SETTINGS["max_returned_rows"] + 10
    sql = f"with recursive r(i) as (select 1 union all select i+1 from r where i < {many}) select i from r"
    rows = await get_json(ds, "/posts.json?" + urlencode({"sql": sql, "_shape": "objects"}))
    assert len(rows["rows"]) == SETTINGS["max_returned_rows"] and rows["truncated"] is True
    assert (await ds.client.get("/posts.db")).status_code == 200  # allow_download: on


def test_command_line_carries_every_setting_and_the_configuration(tmp_path):
    args = datasette_args(tmp_path / "posts.db", tmp_path / "inspect.json", "127.0.0.1", 9999)
    assert args[:3] == ["serve", "-i", str(tmp_path / "posts.db")]
    for flag, value in [
        ("--inspect-file", str(tmp_path / "inspect.json")),
        ("--metadata", str(METADATA)),
        ("--plugins-dir", str(PLUGINS)),
        ("--template-dir", str(TEMPLATES)),
        ("--host", "127.0.0.1"),
        ("--port", "9999"),
    ]:
        assert args[args.index(flag) + 1] == value
    assert "--cors" in args
    flags = {args[i + 1]: args[i + 2] for i, arg in enumerate(args) if arg == "--setting"}
    assert set(flags) == set(SETTINGS)
    assert flags["suggest_facets"] == "off" and flags["allow_download"] == "on"


def test_container_command_is_the_same_command_on_port_and_workers_from_the_environment():
    shell, flag, script = container_command()
    assert (shell, flag) == ("sh", "-c") and script.startswith(CHOOSE_COMMAND + 'exec datasette "$@" ')
    local = serve_options(Path("posts.db"), Path("inspect.json"), "0.0.0.0", 1234, root=Path("."))
    assert script.endswith(" ".join(local).replace("--port 1234", f"--port {PORT_FROM_ENV}"))
    assert PORT_FROM_ENV == '"${PORT:-8080}"'
    assert not [word for word in script.split() if word.startswith("/") or ".." in word]


def container_words(environment: dict) -> list[str]:
    """The words the image's CMD would run `datasette` with, in this environment."""
    _, _, script = container_command()
    echoed = script.replace("exec datasette ", "printf '%s\\n' ", 1)
    env = {key: value for key, value in os.environ.items() if key not in ("WEB_CONCURRENCY", "PORT")} | environment
    return subprocess.run(["sh", "-c", echoed], env=env, capture_output=True, text=True, check=True).stdout.splitlines()


def test_the_container_runs_one_worker_per_cpu_unless_told():
    cpus = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    words = container_words({})
    assert words[: 3 if cpus > 1 else 1] == (["gunicorn", "--workers", str(cpus)] if cpus > 1 else ["serve"])
    assert words[words.index("--port") + 1] == "8080"
    told = container_words({"WEB_CONCURRENCY": "3", "PORT": "9000"})
    assert told[:3] == ["gunicorn", "--workers", "3"] and told[told.index("--port") + 1] == "9000"
    for one in ("1", "many"):  # one, or nothing the shell can count: plain `datasette serve`
        assert container_words({"WEB_CONCURRENCY": one})[:2] == ["serve", "-i"]


def test_one_worker_is_datasette_serve_and_more_are_gunicorn():
    assert datasette_args(Path("posts.db"), Path("inspect.json"))[0] == "serve"
    assert "--workers" not in datasette_args(Path("posts.db"), Path("inspect.json"))
    assert datasette_args(Path("posts.db"), Path("inspect.json"), workers=2)[:3] == ["gunicorn", "--workers", "2"]


def test_readme_shows_the_plain_datasette_command():
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    assert "datasette serve -i" in readme, "README.md lost its plain `datasette serve -i` command"
    for line in plain_commands().splitlines():
        assert line in readme, f"README.md's plain command is out of date; it should read:\n{plain_commands()}"


def test_metadata_says_what_the_dataset_is():
    for key in ("title", "description", "license", "source", "source_url", "about"):
        assert METADATA_DICT.get(key), key
    for key in ("title", "description"):
        text = METADATA_DICT[key]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in text), f"{key} has no Chinese"
        assert "Chinese-language" in text, f"{key} has no English"
    assert "publisher" in METADATA_DICT["license"] and "出版者" in METADATA_DICT["license"]


def test_every_table_and_column_is_described(site_db):
    tables = METADATA_DICT["databases"]["posts"]["tables"]
    with sqlite3.connect(site_db) as conn:
        names = [
            name
            for (name,) in conn.execute("select name from sqlite_master where type = 'table'")
            if not name.startswith("sqlite_") and not any(name.startswith(f"{t}_") for t in INDEX_TABLES)
        ]
        for name in names:
            assert tables.get(name, {}).get("description"), f"table {name} has no description"
            columns = [row[1] for row in conn.execute(f"pragma table_info([{name}])")]
            described = tables[name].get("columns", {})
            missing = [c for c in columns if not described.get(c)]
            assert not missing, f"{name}: no description for {missing}"
    assert "articles" in names and set(INDEX_TABLES) <= set(names)
    assert f"first {LEAD_CHARS} characters" in tables["related_fts"]["columns"]["lead"]


async def test_bodies_render_as_html_on_their_table_page_only(ds, site_db):
    with sqlite3.connect(site_db) as conn:
        (article,) = conn.execute("select article_id from article_bodies where body_html like '%<p>%' limit 1").fetchone()
    bodies = await get_html(ds, f"/posts/article_bodies?article_id={article}")
    cell = bodies.split('<td class="col-body_html', 1)[1].split("</td>", 1)[0]
    assert "<p>" in cell and "&lt;p&gt;" not in cell
    query = await get_html(ds, f"/posts?sql=select+body_html+from+article_bodies+where+article_id={article}")
    cell = query.split('<td class="col-body_html', 1)[1].split("</td>", 1)[0]
    assert "&lt;p&gt;" in cell and "<p>" not in cell  # ad-hoc SQL shows the stored text, escaped


def test_nothing_needs_the_blocked_markdown_plugin(site_db):
    # plugins/html_cells.py blocks datasette-render-markdown: it renders columns named
    # *_markdown and datasette-dashboards' markdown charts, and this site has neither.
    with sqlite3.connect(site_db) as conn:
        tables = [name for (name,) in conn.execute("select name from sqlite_master where type in ('table', 'view')")]
        columns = [(t, row[1]) for t in tables for row in conn.execute(f"pragma table_info([{t}])")]
    assert not [c for c in columns if c[1].endswith("_markdown")]
    dashboards = METADATA_DICT["plugins"]["datasette-dashboards"]
    charts = [chart for board in dashboards.values() for chart in board["charts"].values()]
    assert charts and all(chart["library"] != "markdown" for chart in charts)


async def test_articles_table_is_configured_for_readers(ds):
    data = await get_json(ds, "/posts/articles.json?_shape=objects")
    published = [row["published"] for row in data["rows"]]
    assert published == sorted(published, reverse=True) and len(published) == 4
    assert set(data["facet_results"]) == {"source", "publication", "author", "tags", "year"}
    table = METADATA_DICT["databases"]["posts"]["tables"]["articles"]
    assert table["label_column"] == "title" and table["sort_desc"] == "published"
    assert (table["fts_table"], table["fts_pk"]) == ("articles_fts", "id")
    assert "searchmode" not in table


# --- pages ---------------------------------------------------------------------


async def test_every_table_page_and_its_json(ds):
    tables = [t["name"] for t in (await get_json(ds, "/posts.json"))["tables"] if not t["hidden"]]
    assert {"articles", "article_bodies", "images", "links", "tags", "article_tags"} <= set(tables)
    for table in tables:
        page = await get_html(ds, f"/posts/{table}")
        assert "<h1" in page and table in page
        data = await get_json(ds, f"/posts/{table}.json")
        assert data["table"] == table and "rows" in data
    index = await get_html(ds, "/")
    assert "中文新闻与评论文章库" in index and "Chinese-language news and opinion posts" in index


async def test_articles_table_page_is_light_and_has_no_bodies(ds, site_db):
    page = await get_html(ds, "/posts/articles")
    assert len(page.encode()) < PAGE_LIMIT
    assert "<figure" not in page and "<figcaption" not in page  # a line of text, never the body
    # The line is the lead: the text, without the figure's caption between its paragraphs.
    assert f'<p class="article-item-line">{RICH_SENTENCE} 第二段，含外部链接和内部链接。</p>' in page
    assert f'href="/posts/articles/{RICH_ID}">富文本测试：图片与链接</a>' in page  # title links to the article
    tree = LexborHTMLParser(page)
    facets = {node.attributes["data-column"] for node in tree.css(".facet-info[data-column]")}
    # The five configured facets, less those with no value in the data (hidden, not empty boxes).
    with sqlite3.connect(site_db) as conn:
        valued = {column for column in ("source", "publication", "author", "year") if conn.execute(f"select count({column}) from articles").fetchone()[0]}
    conn.close()
    assert "publication" not in valued and facets == valued | {"tags"}
    assert tree.css_first('form[action="/posts/articles"] input[name="_search"]') is not None  # from fts_table


async def test_article_page_shows_the_article_with_a_rendered_body(ds):
    page = await get_html(ds, f"/posts/articles/{RICH_ID}")
    assert "<title>富文本测试：图片与链接 · 样例新闻</title>" in page
    assert ">富文本测试：图片与链接</h1>" in page
    assert '<time datetime="2023-05-06T07:08:09Z">2023-05-06</time>' in page
    assert "?source=%E6%A0%B7%E4%BE%8B%E6%96%B0%E9%97%BB\">样例新闻</a>" in page
    assert ">测试作者</a>" in page
    assert all(f">{tag}</a>" in page for tag in ("测试", "图片", "样例"))
    body = article_body_html(page)
    assert f"<p>{RICH_SENTENCE}</p>" in body
    assert '<img src="https://news.example.com/img/1.png" alt="示意图"' in body
    assert "<figcaption>图一：图片说明文字</figcaption>" in body
    assert '<a href="https://other.example.org/a" rel="noopener noreferrer nofollow">外部链接</a>' in body
    assert "&lt;p&gt;" not in page and "&lt;img" not in page
    assert f'href="/posts/images?article_id={RICH_ID}">2 图片 images</a>' in page
    assert f'href="/posts/links?article_id={RICH_ID}">2 链接 links</a>' in page


async def test_images_and_links_link_back_to_their_article_by_label(ds):
    for table in ("images", "links"):
        page = await get_html(ds, f"/posts/{table}?article_id={RICH_ID}")
        assert f'<a href="/posts/articles/{RICH_ID}">富文本测试：图片与链接</a>&nbsp;<em>{RICH_ID}</em>' in page
        rows = (await get_json(ds, f"/posts/{table}.json?article_id={RICH_ID}&_labels=on&_shape=array"))
        assert len(rows) == 2
        assert rows[0]["article_id"] == {"value": RICH_ID, "label": "富文本测试：图片与链接"}


async def test_hostile_post_is_shown_as_text_and_runs_nothing(ds):
    page = await get_html(ds, f"/posts/articles/{HOSTILE_ID}")
    assert "&lt;script&gt;window.__canary=&#39;title&#39;&lt;/script&gt;恶意标题" in page
    assert "<script>window.__canary" not in page
    body = article_body_html(page)
    assert "<p>第一段</p>" in body
    for needle in ("<script", "onerror", "onload", "onclick", "ontoggle", "javascript:", "<svg", "<iframe", "<style", "<form"):
        assert needle not in body.lower(), needle
    assert "<b onmouseover" not in page


async def test_article_bodies_table_renders_html_but_adhoc_sql_never_does(ds):
    table = await get_html(ds, f"/posts/article_bodies?article_id={RICH_ID}")
    assert f"<p>{RICH_SENTENCE}</p>" in table
    attack = "<img src=x onerror=alert(document.domain)>"
    for sql in (f"select '{attack}' as body_html", "select body_html from article_bodies"):
        response = await ds.client.get("/posts", params={"sql": sql})
        assert response.status_code == 200
        assert "<img src=x onerror" not in response.text
        assert "&lt;p&gt;" in response.text or "&lt;img src=x onerror" in response.text
    # the feed's page lists the articles; their bodies are for the .atom only
    canned = await get_html(ds, "/posts/feed")
    assert "富文本测试：图片与链接" in canned and RICH_SENTENCE not in canned and "<figure" not in canned


async def test_search_box_finds_articles_through_the_fts_table(ds):
    rows = await get_json(ds, "/posts/articles.json?_search=富文本&_shape=array")
    assert [row["id"] for row in rows] == [RICH_ID]
    page = await get_html(ds, "/posts/articles?_search=富文本")
    assert "<mark>富文本</mark>测试：图片与链接" in page and "第二篇样例文章" not in page


# --- the response cache -----------------------------------------------------------


def load_plugin(name: str):
    spec = importlib.util.spec_from_file_location(f"plugin_{name}", PLUGINS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_repeat_anonymous_gets_come_from_the_cache(ds):
    first = await ds.client.get("/posts/articles")
    second = await ds.client.get("/posts/articles")
    assert "x-cache" not in first.headers and second.headers["x-cache"] == "hit"
    assert second.text == first.text and second.headers["cache-control"] == "max-age=300"
    other = await ds.client.get("/posts/articles?source=样例新闻")
    assert "x-cache" not in other.headers and "第二篇样例文章" in other.text and "恶意标题" not in other.text
    personal = await ds.client.get("/posts/articles", headers={"cookie": "ds_actor=x"})
    assert "x-cache" not in personal.headers and "no-store" in personal.headers["cache-control"]
    for path in ("/posts/articles?_ttl=0", "/posts/nope"):
        await ds.client.get(path)
        assert "x-cache" not in (await ds.client.get(path)).headers, path


async def test_a_request_with_authorization_bypasses_the_cache(ds):
    path = "/posts/articles?source=恶意来源"
    await ds.client.get(path)
    assert (await ds.client.get(path)).headers.get("x-cache") == "hit"  # cached for anyone else
    for _ in range(2):
        personal = await ds.client.get(path, headers={"authorization": "Bearer token"})
        assert personal.status_code == 200 and "x-cache" not in personal.headers
        assert "no-store" in personal.headers["cache-control"]


def test_cache_keeps_only_what_an_http_cache_may_share():
    cache = load_plugin("response_cache")

    def start(status=200, **headers):
        return {"status": status, "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}

    assert cache.cache_seconds(start(cache_control="max-age=300", vary="Cookie, Authorization")) == 300
    assert cache.cache_seconds(start(404, cache_control="max-age=300")) == 0
    assert cache.cache_seconds(start(cache_control="private, no-store")) == 0
    assert cache.cache_seconds(start(cache_control="no-cache")) == 0
    assert cache.cache_seconds(start(cache_control="max-age=300", set_cookie="a=b")) == 0
    assert cache.cache_seconds(start(cache_control="max-age=300", vary="Accept-Language")) == 0
    assert cache.cache_seconds(start()) == 0
    # a client may ask for any max-age with ?_ttl=; the cache keeps nothing longer than its bound
    assert cache.cache_seconds(start(cache_control="max-age=999999999")) == cache.MAX_KEEP_SECONDS

    a, b, c = (("http", b"host", path, b"") for path in (b"/a", b"/b", b"/c"))
    big = cache.entry_size(a, {}, b"12345")
    lru = cache.ResponseCache(max_total=2 * big)
    lru.put(a, float("inf"), {}, b"12345")
    lru.put(b, float("inf"), {}, b"12345")
    assert lru.get(a) is not None  # a is now the most recently used
    lru.put(c, float("inf"), {}, b"1")
    assert lru.get(b) is None and lru.get(a) and lru.get(c)
    assert lru.size == big + cache.entry_size(c, {}, b"1")
    old = ("http", b"host", b"/old", b"")
    lru.put(old, 0.0, {}, b"1")
    assert lru.get(old) is None
    # a long query string with a two-byte body is counted at its real size
    assert cache.entry_size(("http", b"host", b"/x", b"pad=" + b"x" * 5000), {}, b"[]") > 5000


# --- JSON API ------------------------------------------------------------------


async def test_json_shapes(ds):
    rows = await get_json(ds, "/posts/articles.json?_shape=array&source=样例新闻")
    assert [row["id"] for row in rows] == [RICH_ID, SECOND_ID]
    assert rows[0]["title"] == "富文本测试：图片与链接" and json.loads(rows[0]["tags"]) == ["测试", "图片", "样例"]
    assert all(row["id"] < 2**53 for row in rows)
    objects = await get_json(ds, "/posts/articles.json?_shape=objects&source=样例新闻")
    assert [row["id"] for row in objects["rows"]] == [RICH_ID, SECOND_ID]
    arrays = await get_json(ds, "/posts/articles.json?_shape=arrays&source=样例新闻&_col=title")
    assert arrays["columns"] == ["id", "title"] and arrays["rows"][1] == [SECOND_ID, "第二篇样例文章"]
    keyed = await get_json(ds, "/posts/articles.json?_shape=object&source=样例新闻")
    assert set(keyed) == {str(RICH_ID), str(SECOND_ID)}
    lines = (await ds.client.get("/posts/articles.json?_shape=array&_nl=on&source=样例新闻")).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [RICH_ID, SECOND_ID]


async def test_facets(ds):
    data = await get_json(ds, "/posts/articles.json?_shape=objects")
    facets = data["facet_results"]
    assert {r["value"]: r["count"] for r in facets["source"]["results"]} == {
        "样例新闻": 2, "恶意来源": 1, "自由亚洲电台": 1,
    }  # fmt: skip
    assert {r["value"]: r["count"] for r in facets["tags"]["results"]}["测试"] == 2
    assert facets["tags"]["type"] == "array"
    assert {r["value"]: r["count"] for r in facets["year"]["results"]} == {2023: 1, 2022: 2, 2021: 1}
    filtered = await get_json(ds, "/posts/articles.json?tags__arraycontains=图片&_shape=objects")
    assert [row["id"] for row in filtered["rows"]] == [RICH_ID]
    extra = await get_json(ds, "/posts/links.json?_facet=domain")
    assert {r["value"]: r["count"] for r in extra["facet_results"]["domain"]["results"]}["other.example.org"] == 2


async def test_each_canned_query(ds):
    expected = {
        "articles_per_month": ({"month": "2023-05", "source": "样例新闻", "articles": 1}, {}),
        "top_linked_domains": ({"domain": "rfa.org", "links": 3, "articles": 1, "internal_links": 3}, {}),
        "most_images": ({"source": "自由亚洲电台", "image_count": 3}, {}),  # the seed post in data/
        "tag_cooccurrence": ({"tag": "样例", "articles": 2}, {"tag": "测试"}),
        "latest_by_source": ({"id": RICH_ID, "atom_id": RICH_URL}, {"source": "样例新闻"}),
        "feed": ({"atom_id": RICH_URL, "atom_title": "富文本测试：图片与链接"}, {}),
        "search": ({"id": RICH_ID, "source": "样例新闻"}, {"q": "富文本"}),
    }
    assert set(expected) | {"cross_posted"} == set(QUERIES)  # cross_posted: tests/test_revisions_page.py, with a copy
    for name, (wanted, params) in expected.items():
        response = await ds.client.get(f"/posts/{name}.json", params={**params, "_shape": "array"})
        assert response.status_code == 200, (name, response.text[:300])
        rows = response.json()
        assert rows and {k: rows[0].get(k) for k in wanted} == wanted, (name, rows[:2])
        page = await get_html(ds, f"/posts/{name}")
        assert QUERIES[name]["title"].split(" · ")[0] in page
    domains = await get_json(ds, "/posts/top_linked_domains.json?_shape=array")
    assert {"domain": "other.example.org", "links": 2, "articles": 2, "internal_links": 0} in domains
    cooccurring = await get_json(ds, "/posts/tag_cooccurrence.json?tag=测试&_shape=array")
    assert cooccurring == [{"tag": "样例", "articles": 2}, {"tag": "图片", "articles": 1}]


async def test_atom_feed_of_newest_articles_is_sanitized(ds):
    response = await ds.client.get("/posts/feed.atom")
    assert response.status_code == 200 and "xml" in response.headers["content-type"]
    ns = {"a": "http://www.w3.org/2005/Atom"}
    feed = ET.fromstring(response.content)
    entries = feed.findall("a:entry", ns)
    assert [e.find("a:id", ns).text for e in entries][:2] == [RICH_URL, SECOND_URL]
    contents = " ".join(e.find("a:content", ns).text or "" for e in entries)
    assert RICH_SENTENCE in contents
    for needle in ("<script", "onerror", "javascript:", "<svg", "<iframe"):
        assert needle not in contents.lower(), needle
    by_source = await ds.client.get("/posts/latest_by_source.atom?source=样例新闻")
    assert by_source.status_code == 200 and len(ET.fromstring(by_source.content).findall("a:entry", ns)) == 2


async def test_download_is_the_sqlite_file(ds, site_db):
    response = await ds.client.get("/posts.db")
    assert response.status_code == 200
    assert response.content[:16] == b"SQLite format 3\x00"
    assert response.content == site_db.read_bytes()


async def test_cors_is_on_for_the_json_api(ds):
    response = await ds.client.get("/posts/articles.json?_shape=array")
    assert response.headers["access-control-allow-origin"] == "*"


# --- the real `build_db.py serve` -------------------------------------------------


def test_build_db_serve_runs_datasette_as_configured(site_db, tmp_path):
    # A database in a folder outside the project, served from a cwd outside it too.
    db = tmp_path / "elsewhere" / "posts.db"
    db.parent.mkdir()
    db.write_bytes(site_db.read_bytes())
    with running_server(db) as base, httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
        settings = client.get("/-/settings.json").json()
        assert {name: settings[name] for name in SETTINGS} == SETTINGS
        databases = client.get("/-/databases.json").json()
        assert [(d["name"], d["is_mutable"]) for d in databases] == [("posts", False)]
        assert client.get("/-/metadata.json").json() == METADATA_DICT
        download = client.get("/posts.db")
        assert download.status_code == 200 and download.content[:16] == b"SQLite format 3\x00"
        api = client.get("/posts/articles.json?_shape=array&source=样例新闻")
        assert api.headers["access-control-allow-origin"] == "*"
        assert [row["id"] for row in api.json()] == [RICH_ID, SECOND_ID]
        page = client.get(f"/posts/articles/{RICH_ID}").text
        assert f"<p>{RICH_SENTENCE}</p>" in page
    inspect = json.loads(inspect_path(db).read_text())
    assert inspect["posts"]["tables"]["articles"]["count"] == 4
    assert not (PROJECT / "inspect.json").exists() and not list(PROJECT.glob("*.inspect.json"))


README_SITE = "http://127.0.0.1:8001"
SEED_TITLE = "腾讯捐五百亿元后立即增用户收费作补偿"  # the post in data/


def readme_search_commands() -> list[str]:
    """The README's curl commands for a search through the JSON API."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"`(curl [^`]*_search[^`]*)`", readme)


def test_readme_search_commands_work_as_written(data_site):
    commands = readme_search_commands()
    assert len(commands) == 2 and all(README_SITE in command for command in commands), commands
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    no_proxy = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}  # 127.0.0.1 only
    for command in commands:
        args = shlex.split(command.replace(README_SITE, data_site))
        done = subprocess.run(args, capture_output=True, text=True, encoding="utf-8", timeout=30, env=no_proxy)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.startswith("["), (command, done.stdout[:300])  # a 400 is an error page
        assert SEED_TITLE in [row["title"] for row in json.loads(done.stdout)], command


def test_build_db_serve_without_a_usable_database_says_so(tmp_path):
    result = subprocess.run(
        [sys.executable, str(PROJECT / "build_db.py"), "serve", "--db", str(tmp_path / "missing.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "no such database" in result.stderr and "missing.db" in result.stderr
    (tmp_path / "posts.db").write_text("not a database")
    result = subprocess.run(
        [sys.executable, str(PROJECT / "build_db.py"), "serve", "--db", str(tmp_path / "posts.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "is it a SQLite database?" in result.stderr, result.stderr[-500:]


# --- the real sample in data/ -----------------------------------------------------


@pytest.fixture(scope="module")
def corpus_ds_files(corpus_db, data_inspect):
    return corpus_db, data_inspect


async def test_corpus_table_page_is_under_150_kb(corpus_ds_files):
    ds = make_datasette(*corpus_ds_files)
    page = await get_html(ds, "/posts/articles")
    assert len(page.encode()) < PAGE_LIMIT, len(page.encode())
    assert page.count('<li class="article-item" lang="') == SETTINGS["default_page_size"]


async def test_corpus_article_with_most_images_shows_them_all(corpus_ds_files):
    db, _ = corpus_ds_files
    ds = make_datasette(*corpus_ds_files)
    with sqlite3.connect(db) as conn:
        article, images = conn.execute("select id, image_count from articles order by image_count desc limit 1").fetchone()
    body = article_body_html(await get_html(ds, f"/posts/articles/{article}"))
    assert body.count("<img ") == images and body.count("<p>") > 3


async def test_corpus_canned_queries_return_rows(corpus_ds_files):
    ds = make_datasette(*corpus_ds_files)
    params = {"latest_by_source": "source=Matters", "tag_cooccurrence": "tag=Surveillance", "search": "q=腾讯"}
    for name in set(QUERIES) - {"cross_posted"}:  # the sample has no copies: an empty list is right
        rows = await get_json(ds, f"/posts/{name}.json?_shape=array&{params.get(name, '')}")
        assert rows, name
    together = {row["tag"]: row["articles"] for row in await get_json(ds, "/posts/tag_cooccurrence.json?_shape=array&tag=Surveillance")}
    assert together["privacy"] >= 2 and "iYouPort" not in together, together


def process_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def servers_on(port: int) -> list[int]:
    """The processes whose command line serves on `port`, by /proc (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--port" in words and words[words.index(b"--port") + 1 : words.index(b"--port") + 2] == [str(port).encode()]:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker processes from /proc")
def test_serve_with_two_workers_forks_two_that_serve_the_site(data_db):
    port = free_port()
    with running_server(data_db, port=port, workers=2) as base, httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
        serving = servers_on(port)  # `build_db.py serve` became `datasette gunicorn` (exec); its forks
        (server,) = [pid for pid in serving if not any(pid in process_children(other) for other in serving)]
        workers = process_children(server)
        assert len(workers) == 2 and set(workers) == set(serving) - {server}
        article = client.get("/posts/articles.json?_shape=array&_size=1").json()[0]
        for _ in range(6):  # each request may reach either worker: every page works in both
            assert client.get(f"/posts/articles/{article['id']}").status_code == 200
            assert client.get("/posts/search.json?q=%E9%A6%99%E6%B8%AF&_shape=array").status_code == 200
    assert not [pid for pid in [server, *workers] if Path(f"/proc/{pid}").exists() and b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_gunicorn_gets_an_access_log_uvicorns_keep_alive_and_no_shared_control_socket(data_db, data_inspect):
    import datasette_gunicorn

    make_datasette(data_db, data_inspect)  # loads plugins/, gunicorn_settings.py among them
    application = datasette_gunicorn.StandaloneApplication(app=None, options={"bind": "127.0.0.1:0", "workers": 2})
    cfg = application.cfg
    assert (cfg.workers, cfg.accesslog, cfg.keepalive) == (2, "-", 5)
    assert cfg.worker_class_str == "uvicorn_worker.UvicornWorker"
    assert cfg.control_socket_disable is True

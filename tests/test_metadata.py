"""What each article is: its author, topics and original publication, read from the page.

The expectations in HAND_CHECKED were written down by reading the raw pages in data/ (the
byline, the category and tag links, the URL), not by running the code, so they cannot
drift with it. The whole-sample tests re-read every page with plain regular expressions,
independently of the build's parser.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from pathlib import Path

import pytest

from conftest import CORPUS, make_post
from postsdb.build import build
from postsdb.parse import parse_post
from postsdb.sites import SITES

POSTS = CORPUS / "posts"

# file name start → (author, publication, topics in page order) as a reader sees them.
HAND_CHECKED = {
    "2016-07-19-警惕微妙的劝导术": (
        "McCaffrey",
        None,
        ["Knowledge Node", "关于公民社会和反抗", "心理学和社交工程", "社会运动和公民社会", "给行动者的护身符和武器",
         "行动派- 社会反抗的思考", "propaganda", "Psychology", "social media"],
    ),  # fmt: skip
    "2021-05-31-反垄断？算了吧": (
        "Gabriel Fornard",
        None,
        ["Knowledge Node", "Newsletters", "关于高堡奇人", "Antitrust", "Biden", "big tech", "Justice Department",
         "Political", "revolving door"],
    ),  # fmt: skip
    # Nei.st's pages name no one (its front matter says "Nei.st"): no author.
    "2019-08-31-焦虑时代的市场": (None, "The Economist", []),  # its one category link is the publication
    "2019-11-23-移民几何": (None, "Bloomberg", ["The New Economy"]),
    "2020-02-25-翻箱倒柜": (None, "The Economist", ["Free exchange"]),  # a column of The Economist
    "2019-10-16-第三代毒品较量": (None, "Caixin Weekly", []),  # no category link: from the URL
    "2014-03-05-北风专栏": ("温云超", None, []),
    "2020-05-25-“春潮”涌动": ("余雅琴", None, []),
    "2020-05-09-How Will China Shape Global Governance": ("Jeremy Youde, Melanie Hart & more", None, []),
    "2019-10-09-此之盛世，彼之裸命": ("張潔平", None, []),
    "2014-12-18-最后的报纸": ("Yeeyan", None, []),
    # 燕京书评: front matter "燕京书评", and no byline in the text; its editors sign another one.
    "2020-10-12-牟钰": (None, None, []),
    "2021-05-25-“孤独的接骨木”": ("燕京书评编辑部", None, []),
    "2020-06-25-從博物館寄物櫃理解變數儲存模型": ("Huli", None, []),  # Huli's own feed: Huli is a person
    "2021-02-24-程式導師實驗計畫第五期開始啦": ("Huli", None, []),  # the same person on medium.com
}


def post_file(prefix: str) -> Path:
    [path] = [p for p in POSTS.iterdir() if p.name.startswith(prefix)]
    return path


def query(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.mark.parametrize("prefix", sorted(HAND_CHECKED))
def test_hand_checked_posts(prefix, data_db):
    author, publication, topics = HAND_CHECKED[prefix]
    path = post_file(prefix)
    [(got_author, got_publication, got_tags, title)] = query(
        data_db, "select author, publication, tags, title from articles where path = ?", f"posts/{path.name}"
    )
    assert (got_author, got_publication, json.loads(got_tags)) == (author, publication, topics)
    assert not title.endswith(" - iYouPort")


def test_tags_table_holds_topics_with_their_kind(data_db):
    kinds = dict(query(data_db, "select name, kind from tags where name in ('Knowledge Node', 'Psychology', 'Free exchange')"))
    assert kinds == {"Knowledge Node": "category", "Psychology": "tag", "Free exchange": "category"}
    joined = query(
        data_db,
        """select tags.name from article_tags join tags on tags.id = tag_id join articles on articles.id = article_id
        where articles.path like 'posts/2019-11-23-%'""",
    )
    assert joined == [("The New Economy",)]


# --- the whole sample, re-read independently ---------------------------------------

ANCHOR = re.compile(r'<a\b[^>]*\brel="(?P<rel>[^"]*)"[^>]*>(?P<text>.*?)</a>', re.S)


def page_anchors(path: Path, rel_word: str) -> list[tuple[str, str]]:
    """(href, text) of every `<a rel="… rel_word …">` in the raw page."""
    found = []
    for match in ANCHOR.finditer(path.read_text(encoding="utf-8")):
        if rel_word in match.group("rel").split():
            href = re.search(r'href="([^"]*)"', match.group(0))
            found.append((href.group(1) if href else "", " ".join(html.unescape(match.group("text")).split())))
    return found


def site_posts(*sites: str) -> list[Path]:
    return [p for p in sorted(POSTS.iterdir()) if re.search(r"^categories: \[ (.*) \]$", p.read_text(encoding="utf-8"), re.M).group(1) in sites]


def test_every_iyouport_and_neist_anchor_is_kept(data_db):
    rows = {path: (author, json.loads(tags)) for path, author, tags in query(data_db, "select path, author, tags from articles")}
    checked = 0
    for path in site_posts("iYouPort", "Nei.st"):
        author, tags = rows[f"posts/{path.name}"]
        for _, name in page_anchors(path, "author"):
            assert name in author, (path.name, name, author)
        for href, name in page_anchors(path, "category") + page_anchors(path, "tag"):
            if re.search(r"/category/medium/[^/]+/?$", href):
                continue  # Nei.st's link to the publication: it is `publication`, not a topic
            assert name.casefold() in {t.casefold() for t in tags}, (path.name, name, tags)
            checked += 1
    assert checked > 200, checked  # the sample has hundreds of such anchors


def test_person_authors_and_publications(data_db):
    iyouport = query(data_db, "select count(*), count(author), sum(author != 'iYouPort') from articles where source = 'iYouPort'")
    assert iyouport == [(30, 30, 30)]
    neist = query(data_db, "select count(*), count(publication) from articles where source = 'Nei.st'")
    assert neist == [(25, 25)]
    assert query(data_db, "select count(*) from articles where source != 'Nei.st' and publication is not null") == [(0,)]


def test_no_author_is_a_mirrored_sites_name(data_db):
    """Read from the front matter with a regular expression: where the mirror wrote its
    site's name as the author, the author is a byline the page gives, or empty."""
    personal = {site.name for site in SITES if site.personal}
    mirrored = {site.name.casefold() for site in SITES if not site.personal}
    authors = dict(query(data_db, "select path, author from articles"))
    wrote_site_name = 0
    for path in sorted(POSTS.iterdir()):
        front_author = re.search(r"^author: (.*)$", path.read_text(encoding="utf-8"), re.M).group(1)
        author = authors[f"posts/{path.name}"]
        assert author is None or author.casefold() not in mirrored, (path.name, author)
        if front_author.casefold() in mirrored:
            wrote_site_name += 1
        elif front_author not in personal:
            assert author == html.unescape(front_author), path.name  # a person in the front matter is kept
    assert wrote_site_name == 30 + 25 + 1  # iYouPort, Nei.st and one 燕京书评
    counts = dict(query(data_db, "select source, count(*) - count(author) from articles group by source"))
    assert (counts["Nei.st"], counts["iYouPort"], counts["燕京书评"], counts["Huli"]) == (25, 0, 1, 0)


def test_no_topic_is_a_site_name_and_no_title_keeps_the_suffix(data_db):
    site_names = {site.name.casefold() for site in SITES}
    for (tags,) in query(data_db, "select tags from articles"):
        assert not site_names & {t.casefold() for t in json.loads(tags)}, tags
    assert query(data_db, "select count(*) from articles where title like '% - iYouPort'") == [(0,)]


def test_tracking_pixels_are_not_images(data_db):
    assert query(data_db, "select count(*) from images where src like '%/_/stat?%' or (width <= 1 and height <= 1)") == [(0,)]
    assert query(data_db, "select count(*) from article_bodies where body_html like '%/_/stat?%'") == [(0,)]
    [(count,)] = query(data_db, "select image_count from articles where path like 'posts/2014-12-18-%'")
    assert count == 1  # 最后的报纸: one photo, and medium's 1×1 beacon


# --- small posts: the rules one at a time --------------------------------------------


def parse_one(folder: Path, **post) -> object:
    return parse_post(make_post(folder, **post), "post.md")


def test_conventions_beyond_microformats(post_folder):
    body = """
    <html><head><meta name="author" content="李四">
    <meta property="article:section" content="评论"><meta property="article:tag" content="香港">
    <script type="application/ld+json">{"@graph": [{"@type": "NewsArticle", "keywords": "新闻自由, 香港",
      "author": [{"@type": "Person", "name": "王五"}]}]}</script></head>
    <body><article><p>正文在这里。</p></article>
    <div class="comments"><a rel="author" href="/u/1">评论者</a><a rel="tag" href="/t">别人的标签</a></div>
    </body></html>
    """
    post = parse_one(post_folder, body=body)
    assert post.author == "作者"  # a person in the front matter is kept
    assert post.body.page.authors == ["李四", "王五"]  # never the commenter
    # The front matter's 测试 is the mirror's source, so it is no topic.
    assert post.topics == [("category", "评论"), ("tag", "香港"), ("tag", "新闻自由")]


def test_the_site_name_is_never_the_author(post_folder):
    front = "---\ntitle: 标题 - iYouPort\ndate: 2021-01-01\nauthor: iYouPort\nfrom: https://www.iyouport.org/x/\ntags: [ iYouPort ]\ncategories: [ iYouPort ]\n---\n"
    byline = '<article><span class="byline"><a rel="author" href="/a">Ann &amp; Bo</a></span><div class="entry-content"><p>正文</p></div></article>'
    (post_folder / "a.md").write_text(front + byline, encoding="utf-8")
    (post_folder / "b.md").write_text(front + "<article><p>正文</p></article>", encoding="utf-8")
    named, unnamed = (parse_post(post_folder / n, n) for n in ("a.md", "b.md"))
    assert (named.author, named.title, named.tags) == ("Ann & Bo", "标题", [])
    assert unnamed.author is None  # the page names no one


def test_a_personal_sites_name_is_its_author(post_folder):
    front = "---\ntitle: 标题\ndate: 2021-01-01\nauthor: {author}\nfrom: https://medium.com/@x/{n}\ntags: [ {site} ]\ncategories: [ {site} ]\n---\n<p>正文</p>"
    for n, (author, site) in enumerate([("Huli", "Huli"), ("Huli", "medium"), ("medium", "medium")]):
        (post_folder / f"{n}.md").write_text(front.format(author=author, site=site, n=n), encoding="utf-8")
    assert [parse_post(post_folder / f"{n}.md", "x.md").author for n in range(3)] == ["Huli", "Huli", None]


def test_a_byline_the_site_writes_into_its_text(post_folder):
    """自由亚洲电台 names its reporter in the text's last line: "记者乔龙  责编 …"."""
    front = "---\ntitle: 标题\ndate: 2021-01-01\nauthor: 自由亚洲电台\nfrom: https://www.rfa.org/mandarin/{n}.html\ntags: [ 自由亚洲电台 ]\ncategories: [ 自由亚洲电台 ]\n---\n<div>{body}</div>"
    bodies = [
        "<p>正文。</p><p>记者乔龙\xa0 <span>责编 胡力汉 许书婷</span> 网编：郭度</p>",
        "<p>正文。</p><p>特约记者：王五 责编：李四</p>",
        "<p>记者会上，他说了很多。</p><p>正文完。</p><p>第三段。</p><p>第四段。</p><p>第五段。</p>",  # not at the end
        "<p>正文，没有署名。</p>",
    ]
    for n, body in enumerate(bodies):
        (post_folder / f"{n}.md").write_text(front.format(n=n, body=body), encoding="utf-8")
    assert [parse_post(post_folder / f"{n}.md", "x.md").author for n in range(4)] == ["乔龙", "王五", None, None]


def test_a_page_with_nothing_to_read_is_a_problem_not_an_article(post_folder, tmp_path):
    make_post(post_folder, name="empty.md", body="<article><nav><a href='/c'>Knowledge Node</a></nav></article>")
    make_post(post_folder, name="picture.md", url="https://example.com/p", body='<p><img src="https://example.com/a.png"></p>')
    summary = build([post_folder], tmp_path / "posts.db")
    assert [path for path, _ in summary.problems] == ["empty.md"]
    assert "not an article" in summary.problems[0][1]
    assert query(tmp_path / "posts.db", "select count(*) from articles") == [(1,)]  # the picture is kept

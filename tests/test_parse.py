"""Parsing, on tiny posts written into tmp_path and on the real seed post."""

from __future__ import annotations

import hashlib

import pytest

from conftest import CORPUS, SEED_URL, make_post
from postsdb.body import collapse_layout_whitespace, extract_body
from postsdb.parse import PostError, article_id, canonical_url, parse_post


def parse(path):
    return parse_post(path, path.name)


@pytest.fixture
def seed():
    return parse(CORPUS / "seed" / "000_4a1463b1f05834cd.txt")


def test_seed_metadata(seed):
    assert seed.title == "腾讯捐五百亿元后立即增用户收费作补偿"
    assert seed.published == "2021-09-06T10:23:00Z"
    assert seed.url == SEED_URL
    assert seed.author == "乔龙"  # "记者乔龙" closes the text; the front matter says 自由亚洲电台
    assert seed.source == "自由亚洲电台"
    assert seed.tags == []  # the mirror's site name is the source, not a topic
    assert seed.feed_published == "2021-09-06T10:23:00Z"
    assert 0 < seed.id < 2**53


def test_seed_images_are_the_three_article_photos(seed):
    images = seed.body.images
    assert [i.caption for i in images] == [
        "微信拟推出聊天记录付费服务，登上微博热搜第一排名。（Public Domain）",
        "网民议论微信拟推初收费服务。（Public Domain）",
        "有网民称，不需要微信聊天记录传送云端。(Public Domain)",
    ]
    assert [i.alt for i in images] == [i.caption for i in images]
    assert all(i.src.startswith("https://www.rfa.org/mandarin/") for i in images)
    assert [(i.width, i.height) for i in images] == [(788, 833), (1080, 702), (1060, 626)]
    assert "icon-zoom" not in seed.body.html


def test_seed_body_is_sanitized_html_and_text(seed):
    assert seed.body.html.startswith("<div><p>中国互联网巨头腾讯公司")
    assert "<figcaption>" in seed.body.html
    assert 'referrerpolicy="no-referrer"' in seed.body.html
    assert "class=" not in seed.body.html and "style=" not in seed.body.html
    assert seed.body.text.startswith("中国互联网巨头腾讯公司近期响应官方“共同富裕”的号召")
    assert "<" not in seed.body.text
    assert seed.body.word_count > 1000


@pytest.mark.parametrize(
    "date, expected",
    [
        ("2021-09-06T10:23:00.000Z", "2021-09-06T10:23:00Z"),
        ("2019-08-31T05:11:52+01:00", "2019-08-31T04:11:52Z"),
        ("2016-07-19T23:53:16+08:00", "2016-07-19T15:53:16Z"),
        ("2020-05-25", "2020-05-25T00:00:00Z"),
        ('"2020-05-25 08:00:00 +0800"', "2020-05-25T00:00:00Z"),
    ],
)
def test_dates_become_utc(post_folder, date, expected):
    assert parse(make_post(post_folder, date=date)).published == expected


def test_epoch_comment_is_the_fallback_date(post_folder):
    path = post_folder / "no-date.md"
    path.write_text('---\ntitle: "t"\nfrom: https://example.com/x\n---\n<!--1630923780000-->\n<div><p>x</p></div>\n')
    post = parse(path)
    assert post.published == "2021-09-06T10:23:00Z"


def test_front_matter_date_wins_over_a_disagreeing_epoch(post_folder):
    body = "<!--1630923780000-->\n[t](https://example.com/a)\n------\n\n<div><p>x</p></div>\n"
    post = parse(make_post(post_folder, date="2021-09-07T00:00:00Z", body=body))
    assert post.published == "2021-09-07T00:00:00Z"
    assert post.feed_published == "2021-09-06T10:23:00Z"


def test_nan_epoch_is_ignored(post_folder):
    body = "<!--NaN-->\n[t](https://example.com/a)\n------\n\n<div><p>正文</p></div>\n"
    post = parse(make_post(post_folder, body=body))
    assert post.feed_published is None
    assert post.body.text == "正文"


def test_link_heading_with_brackets_in_the_title_is_removed(post_folder):
    body = "<!--1605833949000-->\n[[冷戰物語]還不到1989年](https://example.com/a)\n------\n\n<div><p>正文</p></div>\n"
    post = parse(make_post(post_folder, title="", body=body))
    assert post.title == "[冷戰物語]還不到1989年"
    assert "冷戰物語" not in post.body.text


def test_empty_title_falls_back_to_the_page_title(post_folder):
    body = "<html><head><title>页面标题</title></head><body><p>正文</p></body></html>"
    assert parse(make_post(post_folder, title="", body=body)).title == "页面标题"


def test_title_loses_zero_width_and_control_characters(post_folder):
    assert parse(make_post(post_folder, title="标\u200b题\\x08")).title == "标题"


def test_author_entities_are_decoded(post_folder):
    path = make_post(post_folder, extra="")
    path.write_text(path.read_text().replace("author: 作者", "author: Jessica Batke &#38; Shen Lu"))
    assert parse(path).author == "Jessica Batke & Shen Lu"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("HTTPS://WWW.RFA.ORG/a.html#top", "https://www.rfa.org/a.html"),
        ("https://example.com/a?utm_source=x&id=3&utm_medium=y", "https://example.com/a?id=3"),
        ("https://medium.com/@u/p-1?source=rss-abc------2", "https://medium.com/@u/p-1"),
        ("https://matters.news/@a/%25E6%2595%25B8-x", "https://matters.news/@a/%E6%95%B8-x"),
        ("https://matters.news/@a/%e6%95%b8-x", "https://matters.news/@a/%E6%95%B8-x"),
        ("https://matters.news/@a/數-x", "https://matters.news/@a/%E6%95%B8-x"),
        ("  http://http://example.com/a  ", "http://example.com/a"),
        ("https://example.com:443", "https://example.com/"),
        ("https://a.com/x%2Fy", "https://a.com/x%2Fy"),
        ("http://[::1]:8080/a", "http://[::1]:8080/a"),
        ("https://a.com/s?q=%25E6%2595%25B8", "https://a.com/s?q=%E6%95%B8"),
        ("https://a.com/s?q=數", "https://a.com/s?q=%E6%95%B8"),
    ],
)
def test_canonical_url(raw, expected):
    assert canonical_url(raw) == expected


@pytest.mark.parametrize("raw", ["not a url", "ftp://example.com/a", "https://", "https://example.com:99999/"])
def test_url_that_is_not_a_web_url_is_an_error(raw):
    with pytest.raises(PostError, match="`from`"):
        canonical_url(raw)


def first_53_bits_of_sha256(text: str) -> int:
    """README's definition, computed another way: the hex digest read as a 256-bit number."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) >> (256 - 53)


def test_article_id_is_the_first_53_bits_of_the_sha256_of_the_canonical_url(seed, post_folder):
    urls = [SEED_URL, SEED_URL + "x", "https://例子.example/路径?q=一", *(f"https://example.com/{i}" for i in range(1000))]
    assert [article_id(url) for url in urls] == [first_53_bits_of_sha256(url) for url in urls]
    assert all(0 < article_id(url) < 2**53 for url in urls)
    assert seed.id == first_53_bits_of_sha256(SEED_URL)
    # The id is the canonical URL's: tracking parameters and the fragment go first.
    raw = "https://example.com/a?utm_source=x#top"
    post = parse(make_post(post_folder, url=raw))
    assert post.url == canonical_url(raw) != raw and post.id == first_53_bits_of_sha256(canonical_url(raw))


def test_word_count_counts_latin_words_and_cjk_characters(post_folder):
    # Counted by hand: 5 Latin words (Hello, world, good, news, 2021) and 5 CJK characters
    # (大家好 and 中文); ASCII punctuation and markup count nothing.
    body = '<div><p>Hello world 大家好</p><p>good <a href="https://example.com/x">news</a>: 中文 (2021)</p></div>\n'
    post = parse(make_post(post_folder, body=body))
    assert post.body.word_count == 5 + 5


def test_word_count_leaves_out_full_width_punctuation(post_folder):
    # Chinese text has a full-width mark every few characters: none of them is a word.
    post = parse(make_post(post_folder, body="<div><p>大家好，中文！</p></div>\n"))
    assert post.body.word_count == 5


@pytest.mark.parametrize(
    "front, reason",
    [
        ('title: "t"\ndate: 2021-01-01\n', "missing `from`"),
        ('title: "t"\nfrom: https://example.com/a\n', "missing `date`"),
        ('date: 2021-01-01\nfrom: https://example.com/a\n', "missing title"),
        ('title: "t"\ndate: 2021-02-30\nfrom: https://example.com/a\n', "invalid value"),
        ('title: "t"\ndate: yesterday\nfrom: https://example.com/a\n', "not an ISO 8601 date"),
        ('title: [unclosed\n', "invalid YAML"),
        ("- a\n- b\n", "not a mapping"),
    ],
)
def test_bad_front_matter_names_the_file_and_reason(post_folder, front, reason):
    path = post_folder / "bad.md"
    path.write_text(f"---\n{front}---\n<p>x</p>\n")
    with pytest.raises(PostError, match=reason) as raised:
        parse(path)
    assert str(raised.value).startswith("bad.md: ")


@pytest.mark.parametrize(
    "front, reason",
    [
        # where: the line and column in the file (the front matter starts on line 2)
        ('title: "t"\nx: a: b\n', "invalid YAML in front matter: line 3, column 5: "),
        ('title: "t"\nextra:\n\t- a\n', "invalid YAML in front matter: line 4, column 1: a tab: YAML indents with spaces only"),
        # a tag the safe loader does not load, named as it was written
        ("x: !!python/object/apply:os.system ['true']\n", "invalid YAML in front matter: the tag `!!python/object/apply:os.system` is not allowed"),
        ("x: !local thing\n", "invalid YAML in front matter: the tag `!local` is not allowed"),
        # a value that does not fit its type, named
        ("n: !!int abc\n", "invalid value in front matter: 'abc' does not fit its `!!int` tag"),
        ("ok: !!bool maybe\n", "invalid value in front matter: 'maybe' does not fit its `!!bool` tag"),
        ("updated: 2021-02-30\n", "invalid value in front matter: '2021-02-30' is not a real date or time"),
    ],
)
def test_yaml_problems_are_told_in_our_words(post_folder, front, reason):
    path = post_folder / "bad.md"
    path.write_text(f"---\n{front}---\n<p>x</p>\n")
    with pytest.raises(PostError) as raised:
        parse(path)
    assert str(raised.value).startswith(f"bad.md: {reason}"), str(raised.value)


def test_lazy_images_noscript_copies_and_relative_urls():
    html = """<article><div class="entry-content">
      <p>文字</p>
      <img data-lazy-src="https://i2.wp.com/x.org/a.png?resize=1&amp;is-pending-load=1#038;ssl=1"
           src="https://i2.wp.com/x.org/a.png?resize=1&amp;ssl=1" srcset="data:image/gif;base64,R0lG">
      <noscript><img src="https://i2.wp.com/x.org/a.png?resize=1&amp;ssl=1"></noscript>
      <img data-src="//cdn.example.com/b.jpg" src="data:image/gif;base64,R0lG">
      <img src="/c.jpg" alt=" 图 ">
    </div></article>"""
    body = extract_body(html, "https://site.example.org/post/1")
    assert [i.src for i in body.images] == [
        "https://i2.wp.com/x.org/a.png?resize=1&is-pending-load=1&ssl=1",
        "https://cdn.example.com/b.jpg",
        "https://site.example.org/c.jpg",
    ]
    assert body.images[2].alt == "图"
    assert body.html.count("<img") == 3


def test_links_are_absolute_and_junk_is_dropped():
    html = """<div><p>
      <a href=" /inside ">in</a> <a href="https://other.example.com/x">out</a>
      <a href="http://http://example.com/y">doubled</a> <a href="ttps://example.com/z">typo</a>
      <a href="file:///G:/a.html">file</a> <a href="#note">anchor</a> <a href="mailto:a@b.c">mail</a>
      <a href="http://[::1">bad</a> <a href="javascript:alert(1)">js</a>
    </p></div>"""
    body = extract_body(html, "https://www.example.com/post")
    assert [(k.href, k.internal) for k in body.links] == [
        ("https://www.example.com/inside", True),
        ("https://other.example.com/x", True),
        ("http://example.com/y", True),
        ("https://example.com/z", True),
    ]
    assert [k.domain for k in body.links] == ["example.com", "other.example.com", "example.com", "example.com"]
    assert "javascript:" not in body.html and "file:" not in body.html


def test_scraped_page_keeps_the_article_and_drops_chrome():
    html = """<article class="post">
     <header class="entry-header"><h1 class="entry-title">标题</h1></header>
     <div class="entry-meta"><span class="byline"><a href="https://x.org/author/a">作者</a></span></div>
     <div class="entry-content">
      <p>第一段，逾
       <span>6000</span>
       家。</p>
      <link rel="preload" href="//cdn.example.com/font.woff" as="font">
      <div class="sharedaddy"><a href="https://twitter.com/share">Twitter</a></div>
      <div class="jp-relatedposts"><a href="https://x.org/related">相关文章</a></div>
     </div>
    </article>"""
    body = extract_body(html, "https://x.org/post")
    assert body.text == "第一段，逾6000家。"
    assert body.links == []
    assert "<link" not in body.html and "twitter" not in body.html


def test_layout_whitespace_between_words_stays_one_space():
    assert collapse_layout_whitespace("<p>\n  hello\n  <b>world</b>\n</p>") == "<p>hello <b>world</b></p>"
    assert collapse_layout_whitespace("<pre>a\n  b</pre>") == "<pre>a\n  b</pre>"


def test_hostile_markup_is_sanitized():
    html = """<div><p onclick="x()">段落<script>window.pwned=1</script></p>
      <img src="https://e.com/a.png" onerror="alert(1)">
      <a href="javascript:alert(1)">js</a><a href="https://e.com/ok" onmouseover="x()">ok</a>
      <iframe src="https://www.youtube.com/embed/abc"></iframe>
      <style>body{display:none}</style><form action="/x"><input name="q"></form>
      <svg onload="alert(1)"></svg><object data="x.swf"></object></div>"""
    body = extract_body(html, "https://e.com/post")
    lowered = body.html.lower()
    for forbidden in ("<script", "onerror", "onclick", "onmouseover", "onload", "javascript:", "<iframe", "<style", "<form", "<input", "<svg", "<object"):
        assert forbidden not in lowered, forbidden
    assert 'rel="noopener noreferrer nofollow"' in body.html
    assert 'loading="lazy"' in body.html
    assert 'href="https://www.youtube.com/embed/abc"' in body.html  # the video, as a plain link

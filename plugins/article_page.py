"""The article page: `/posts/articles/<id>` is the article as a reader reads it, a light page
of our own (Datasette's row page ran its whole machinery, foreign-key counts and every cell,
for one article).

One thread hop reads the article, its body, its copies, revisions and related articles
(postsdb/reader.py), and `templates/article.html` renders them: title, date, source, author,
publication, topics, the original URL, the body, then one line for data users. The
`.json` twin, `/posts/articles/<id>.json`, stays Datasette's (this route matches no
extension), and so does the row at `/posts/articles?id=<id>`.

- `?script=hans` / `?script=hant`: the title and body in Simplified or Traditional
  (postsdb/script.py converts text nodes only); without it, the article's own script.
- The stored HTML was sanitized at build time; it is put through the same allow-list again
  (after any conversion) before it is marked safe, so a database built by anything else
  cannot bring scripts onto the page.
- OpenGraph and JSON-LD (`NewsArticle`) for share cards and crawlers.
- `Cache-Control` with `s-maxage` (postsdb.reader.cache_control), which the response cache
  (plugins/response_cache.py) and a CDN honour.

Plugin routes come before Datasette's own in 0.65 (`Datasette._routes`), so this route wins
over the row page for the same URL.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from datasette import Response, hookimpl
from markupsafe import Markup

from postsdb import reader
from postsdb.body import sanitize
from postsdb.errors import error_response
from postsdb.reader import reader_headers
from postsdb.script import SCRIPT_OF_LANGUAGE, SCRIPTS, convert_html, convert_text, language

DATABASE, TABLE = "posts", "articles"
SCRIPT_LABELS = {"hans": "简体", "hant": "繁體"}


@hookimpl
def prepare_jinja2_environment(env):
    # `{{ text_language(text) }}`: zh-Hans, zh-Hant or en, for list items made from rows.
    env.globals["text_language"] = language


@hookimpl
def startup():
    # OpenCC's tables and the script character classes, made before the first reader asks.
    language("漢字汉字")


@hookimpl
def register_routes():
    return [(rf"^/{DATABASE}/{TABLE}/(?P<id>-?[0-9]+)$", article_page)]


async def article_page(datasette, request):
    path = request.path
    digits = request.url_vars["id"]
    article_id = reader.url_article_id(digits)
    script = request.args.get("script") or None
    if script is not None and script not in SCRIPTS:
        message = f"script must be one of {', '.join(SCRIPTS)} (Simplified or Traditional), not {script!r}"
        return await error_response(datasette, path, 400, message, "参数错误 · Bad parameter", parameter="script")
    found = None
    if article_id is not None:
        db = datasette.get_database(DATABASE)
        found = await db.execute_fn(lambda conn: reader.article(conn, article_id))
    if found is None:
        message = f"没有这篇文章 · No article has the id {digits if article_id is None else article_id}"
        return await error_response(datasette, path, 404, message, "找不到 · Not found")
    context = page_context(datasette, request, found, script)
    html = await datasette.render_template("article.html", context, request=request, view_name="article")
    return Response.html(html, headers=reader_headers(datasette))


def page_context(datasette, request, found: dict, script: str | None) -> dict:
    page_url = f"{datasette.urls.table(DATABASE, TABLE)}/{found['id']}"
    article = shown_article(found, script)
    return {
        "database": DATABASE,
        "table": TABLE,
        "article": article,
        "related": found["related"],
        "copies": found["copies"],
        "revisions": found["revisions"],
        "scripts": script_links(page_url, found["lang"], script),
        "page_url": page_url,
        "canonical_url": datasette.absolute_url(request, page_url),
        "alternate_url_json": f"{page_url}.json",
        "json_ld": json_ld(found, datasette.absolute_url(request, page_url)),
    }


def shown_article(found: dict, script: str | None) -> dict:
    """The article as the page shows it: in `script` when one is asked for."""
    title, body, lang = found["title"], found["body_html"], found["lang"]
    if script is not None:
        title, body, lang = convert_text(title, script), convert_html(body, script), SCRIPTS[script][1]
    return {
        **{key: value for key, value in found.items() if key not in ("body_html", "related", "copies")},
        "title": title,
        "lang": lang,
        "original_lang": found["lang"],
        "body": Markup(sanitize(body)),
        # Readers read 數字, not %E6%95%B8%E5%AD%97; the link itself keeps the exact URL.
        "url_display": unquote(found["url"] or "", errors="replace"),
    }


def script_links(page_url: str, lang: str, current: str | None) -> list[dict]:
    """简 / 繁 for a Chinese article: the original script first (the plain URL), then the other."""
    original = SCRIPT_OF_LANGUAGE.get(lang)
    if original is None:  # English: nothing to convert
        return []
    other = "hant" if original == "hans" else "hans"
    return [
        {"label": SCRIPT_LABELS[original], "href": page_url, "original": True, "current": current in (None, original), "lang": SCRIPTS[original][1]},
        {"label": SCRIPT_LABELS[other], "href": f"{page_url}?script={other}", "original": False, "current": current == other, "lang": SCRIPTS[other][1]},
    ]


def json_ld(found: dict, url: str) -> Markup:
    """schema.org NewsArticle, as a `<script type="application/ld+json">` body."""
    data = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": found["title"],
        "datePublished": found["published"],
        "inLanguage": found["lang"],
        "url": url,
        "mainEntityOfPage": url,
        "isBasedOn": found["url"],
        "publisher": {"@type": "Organization", "name": found["source"]},
        "description": found["description"],
    }
    if found["author"]:
        data["author"] = {"@type": "Person", "name": found["author"]}
    if found["tags"]:
        data["keywords"] = found["tags"]
    text = json.dumps(data, ensure_ascii=False)
    # Inside <script>, "</script>" or "<!--" in a title must not end or bend the element.
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))

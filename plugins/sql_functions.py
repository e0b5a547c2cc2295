"""SQL functions the canned queries and templates use to show articles to readers.

- `search_snippet(text, q)`: about 100 characters of `text` around the first match of the
  search `q`, HTML-escaped, every match in `<mark>` (across scripts: 腾讯 marks 騰訊);
- `search_highlight(text, q)`: all of `text`, escaped, matches marked (for titles);
- `safe_html(html)`: a stored body put through the build's allow-list again, for SQL whose
  result a page shows as HTML. (The Atom feeds clean their bodies in the `.atom` renderer
  instead, plugins/atom_feeds.py: in the SQL it cost every format, JSON included.)
- `feed_html(html, url)`: a stored body after a first line linking to the original at `url`,
  for the feeds' `atom_content_html` (each entry's own link is its page on this site; the
  original is the second way there). It only adds the link, escaped: the `.atom` renderer
  sanitizes the whole (plugins/atom_feeds.py).

The first three return text that is safe to put in a page whatever its input; `feed_html`'s
result is safe only once the `.atom` renderer has cleaned it. Anyone can call them in ad-hoc
SQL, and Datasette shows their results escaped there anyway.
"""

from __future__ import annotations

from urllib.parse import unquote

from datasette import hookimpl
from markupsafe import escape

from postsdb.body import sanitize
from postsdb.snippet import highlight, snippet


def safe_html(html: str | None) -> str:
    return sanitize(html or "")


def feed_html(html: str | None, url: str | None) -> str:
    original = f'<p>原文 · Original: <a href="{escape(url)}">{escape(unquote(url, errors="replace"))}</a></p>' if url else ""
    return original + (html or "")


@hookimpl
def prepare_connection(conn):
    conn.create_function("search_snippet", 2, snippet, deterministic=True)
    conn.create_function("search_highlight", 2, highlight, deterministic=True)
    conn.create_function("safe_html", 1, safe_html, deterministic=True)
    conn.create_function("feed_html", 2, feed_html, deterministic=True)

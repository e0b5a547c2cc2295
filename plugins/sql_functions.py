"""SQL functions the canned queries and templates use to show articles to readers.

- `search_snippet(text, q)`: about 100 characters of `text` around the first match of the
  search `q`, HTML-escaped, every match in `<mark>` (across scripts: 腾讯 marks 騰訊);
- `search_highlight(text, q)`: all of `text`, escaped, matches marked (for titles);
- `safe_html(html)`: a stored body put through the build's allow-list again, for SQL whose
  result a page shows as HTML. (The Atom feeds clean their bodies in the `.atom` renderer
  instead, plugins/atom_feeds.py: in the SQL it cost every format, JSON included.)

Each returns text that is safe to put in a page whatever its input: anyone can call them
in ad-hoc SQL, and Datasette shows their results escaped there anyway.
"""

from __future__ import annotations

from datasette import hookimpl

from postsdb.body import sanitize
from postsdb.snippet import highlight, snippet


def safe_html(html: str | None) -> str:
    return sanitize(html or "")


@hookimpl
def prepare_connection(conn):
    conn.create_function("search_snippet", 2, snippet, deterministic=True)
    conn.create_function("search_highlight", 2, highlight, deterministic=True)
    conn.create_function("safe_html", 1, safe_html, deterministic=True)

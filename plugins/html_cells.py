"""Cells shown as HTML: `article_bodies.body_html`, on its table page, as it is stored.

Datasette asks every `render_cell` hook about every cell of every page it renders: 800
cells for a page of 50 articles, though the articles page shows them as a list. A hook that
looks up its settings for each cell pays for that 800 times; `datasette.plugin_config`
merges the project's metadata on every call. Two installed plugins did so: they took about
a sixth of the server's CPU on a walk through distinct pages (bench/serve.py), for one
column of one table.

- datasette-render-html, which rendered `body_html`, is replaced by the set lookup below.
- datasette-render-markdown comes with datasette-dashboards, for markdown charts, and
  renders columns named `*_markdown`. This site has neither (tests/test_serve.py checks),
  so it is blocked; a dashboard that wants a markdown chart must unblock it here.

What the column holds was sanitized at build time. The table page shows it as stored, so a
database built by anything else is held back by the Content-Security-Policy
(security_headers.py); the article page puts bodies through the allow-list again.
"""

from __future__ import annotations

from datasette import hookimpl
from datasette.plugins import pm
from markupsafe import Markup

HTML_COLUMNS = {("article_bodies", "body_html")}
BLOCKED_PLUGINS = ("render_markdown",)

for name in BLOCKED_PLUGINS:
    pm.set_blocked(name)


@hookimpl
def render_cell(value, column, table):
    if (table, column) in HTML_COLUMNS and isinstance(value, str):
        return Markup(value)
    return None

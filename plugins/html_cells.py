"""Cells shown as HTML: only `article_bodies.body_html`, on its table page.

datasette-render-html renders that column, as metadata.yml configures it for the
`article_bodies` table. What the column holds was sanitized at build time; the table page
shows it as stored, so a database built by anything else is held back by the
Content-Security-Policy (security_headers.py).

datasette-render-markdown comes with datasette-dashboards, for markdown charts, and renders
columns named `*_markdown`. This site has neither (tests/test_serve.py checks), so it is
blocked: like every `render_cell` hook it is asked about every cell of every page (800 for
a page of 50 articles), and it looked up its settings each time, about a sixth of the
server's CPU on a walk through distinct pages. A dashboard that wants a markdown chart must
unblock it here. datasette-render-html looks up its settings on every cell too; that
look-up is made cheap by plugins/metadata_memo.py.
"""

from __future__ import annotations

from datasette.plugins import pm

BLOCKED_PLUGINS = ("render_markdown",)

for name in BLOCKED_PLUGINS:
    pm.set_blocked(name)

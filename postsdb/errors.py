"""Error responses shaped like Datasette's own, for the plugins that answer before Datasette
does: JSON for `.json` URLs, the site's error page (`error.html`) for everything else."""

from __future__ import annotations

from datasette import Response
from datasette.utils import add_cors_headers


async def error_response(datasette, path: str, status: int, message: str, title: str, **extra) -> Response:
    """`{"ok": false, "error": …, "status": …, "title": …}` as Datasette sends it, plus `extra`."""
    # An asgi_wrapper can answer the very first request, before Datasette has run its
    # startup hooks; the error page needs them (the template globals, such as the CSP nonce).
    await datasette.invoke_startup()
    info = {"ok": False, "error": message, "status": status, "title": title, **extra}
    headers = {}
    if datasette.cors:
        add_cors_headers(headers)
    if path.endswith(".json"):
        return Response.json(info, status=status, headers=headers)
    template = datasette.jinja_env.select_template([f"{status}.html", "error.html"])
    context = dict(info, urls=datasette.urls, app_css_hash=datasette.app_css_hash(), menu_links=lambda: [])
    return Response.html(await template.render_async(context), status=status, headers=headers)

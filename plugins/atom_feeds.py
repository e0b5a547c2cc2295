"""Atom feeds keep the bodies' HTML, through the build's allow-list, only in the feed.

datasette-atom puts each entry's `atom_content_html` through bleach with an allow-list of
its own that lacks `<div>`, `<figure>` and `<figcaption>`, so a feed reader showed them as
text. The site's canned queries (`feed`, `latest_by_source`) return the stored bodies as
they are, which their HTML page and JSON show as data, like `article_bodies` does; only
the `.atom` format renders them as HTML, so only it puts them through `sanitize()`, the
allow-list the build applied (SECURITY.md): a body in a database built by other means
still cannot carry script into a feed reader. Sanitizing in the query instead, for every
format, cost 40% of the CPU of `latest_by_source.json` (bench/cpu.py).

datasette-atom looks up its module-level `clean` on every feed, so replacing it here
gives every feed, canned or ad hoc, this allow-list instead of bleach's.

The database is immutable, and the feeds show the same few hundred newest bodies again and
again: each body's sanitized form is kept (by a digest of the body, for at most
KEPT_BODIES bodies), which takes `latest_by_source.atom` from about 19 to 12 ms of CPU.

The two feeds are reader's pages: where Datasette sends `Cache-Control: max-age=N` (N > 0)
on them, `asgi_wrapper` makes it the reader's pages' `public, max-age=N, s-maxage=…`
(postsdb.reader.cache_control), so a CDN keeps them too. Datasette's own pages, and a feed
asked for with `?_ttl=0`, keep Datasette's header.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict

import datasette_atom
from datasette import hookimpl

from postsdb.body import sanitize
from postsdb.reader import cache_control

KEPT_BODIES = 512  # the feed's 30 and 50 for each of the sources, with room
FEED_PATH = re.compile(r"^/[^/]+/(?:feed|latest_by_source)\.atom$")  # the canned queries in metadata.yml
DATASETTE_MAX_AGE = re.compile(rb"^max-age=([1-9][0-9]*)$")


class Sanitized:
    """`sanitize(html)`, remembered for the last `size` bodies asked for."""

    def __init__(self, size: int = KEPT_BODIES):
        self.kept: OrderedDict[bytes, str] = OrderedDict()
        self.size = size

    def __call__(self, html: str | None) -> str:
        html = html or ""
        key = hashlib.blake2b(html.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if (clean := self.kept.get(key)) is not None:
            self.kept.move_to_end(key)
            return clean
        clean = self.kept[key] = sanitize(html)
        if len(self.kept) > self.size:
            self.kept.popitem(last=False)
        return clean


clean = Sanitized()


datasette_atom.clean = clean


def for_shared_caches(headers: list) -> list:
    """`headers` with Datasette's `max-age=N` (N > 0) turned into a reader's page's."""
    out = []
    for name, value in headers:
        if name.lower() == b"cache-control" and (match := DATASETTE_MAX_AGE.match(value.strip())):
            value = cache_control(int(match.group(1))).encode("ascii")
        out.append((name, value))
    return out


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def feeds_for_shared_caches(scope, receive, send):
            if scope["type"] != "http" or not FEED_PATH.match(scope.get("path", "")):
                return await app(scope, receive, send)

            async def send_shared(message):
                if message["type"] == "http.response.start" and message.get("status") == 200:
                    message = {**message, "headers": for_shared_caches(message.get("headers") or [])}
                await send(message)

            await app(scope, receive, send_shared)

        return feeds_for_shared_caches

    return wrap

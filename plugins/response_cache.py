"""An in-process HTTP cache for anonymous GETs: what a CDN in front of Datasette would do.

The database is served immutable, so a page rendered once is right until Datasette's own
`Cache-Control: max-age` runs out. Rendering the faceted articles page costs tens of
milliseconds of Python; a hit costs a dictionary look-up. The rules are an HTTP cache's:

- only GET, only requests without Cookie or Authorization (nothing personal is stored);
- only 200 responses whose Cache-Control has `max-age` > 0 and no `private`/`no-store`,
  that set no cookie and vary on nothing but Cookie/Authorization;
- kept for max-age seconds; bounded in bytes, least recently used first out.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict

from datasette import hookimpl

MAX_ENTRY_BYTES = 2 * 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 20_000
ENTRY_OVERHEAD = 512  # the tuple, dicts and lists around each entry
# Whatever max-age a response claims (a client can ask for any with `?_ttl=`), keep it at
# most this long: the settings' default_cache_ttl.
MAX_KEEP_SECONDS = 300
MAX_AGE = re.compile(rb"(?:^|[,\s])max-age=(\d+)")
VARY_OK = {b"cookie", b"authorization"}


class ResponseCache:
    def __init__(self, max_total: int = MAX_TOTAL_BYTES):
        self.entries: OrderedDict[tuple, tuple[float, dict, bytes]] = OrderedDict()
        self.size = 0
        self.max_total = max_total

    def get(self, key):
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self.drop(key)
            return None
        self.entries.move_to_end(key)
        return entry

    def put(self, key, expires: float, start: dict, body: bytes) -> None:
        self.drop(key)
        self.entries[key] = (expires, start, body)
        self.size += entry_size(key, start, body)
        while (self.size > self.max_total or len(self.entries) > MAX_ENTRIES) and self.entries:
            self.drop(next(iter(self.entries)))

    def drop(self, key) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.size -= entry_size(key, entry[1], entry[2])


def entry_size(key: tuple, start: dict, body: bytes) -> int:
    """Everything an entry holds, so a long URL with a tiny body is not nearly free."""
    headers = sum(len(k) + len(v) for k, v in start.get("headers", []))
    return len(body) + headers + sum(len(part or b"") for part in key) + ENTRY_OVERHEAD


def cache_key(scope) -> tuple | None:
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    headers = dict(scope.get("headers") or [])
    if b"cookie" in headers or b"authorization" in headers:
        return None
    return (scope.get("scheme"), headers.get(b"host"), scope.get("raw_path") or scope["path"], scope.get("query_string"))


def cache_seconds(start: dict) -> int:
    """How long a response may be kept: 0 for anything an HTTP cache must not share."""
    if start["status"] != 200:
        return 0
    headers = [(k.lower(), v) for k, v in start.get("headers", [])]
    if any(k == b"set-cookie" for k, _ in headers):
        return 0
    vary = {part.strip().lower() for k, v in headers if k == b"vary" for part in v.split(b",")}
    if not vary <= VARY_OK:
        return 0
    control = b",".join(v.lower() for k, v in headers if k == b"cache-control")
    match = MAX_AGE.search(control)
    if not match or b"private" in control or b"no-store" in control or b"no-cache" in control:
        return 0
    return min(int(match.group(1)), MAX_KEEP_SECONDS)


# trylast: the outermost wrapper (Datasette wraps its app with each hook's result in call
# order, and trylast hooks are called last), so what it stores is the response exactly as
# the other wrappers left it: a page and the Content-Security-Policy that matches its nonce.
@hookimpl(trylast=True)
def asgi_wrapper(datasette):
    def wrap(app):
        cache = ResponseCache()

        async def cached_app(scope, receive, send):
            key = cache_key(scope)
            if key is None:
                return await app(scope, receive, send)
            hit = cache.get(key)
            if hit is not None:
                _, start, body = hit
                await send({**start, "headers": [*start["headers"], (b"x-cache", b"hit")]})
                await send({"type": "http.response.body", "body": body})
                return
            recorder = Recorder(send)
            await app(scope, receive, recorder)
            if recorder.complete and (seconds := cache_seconds(recorder.start)):
                cache.put(key, time.monotonic() + seconds, recorder.start, b"".join(recorder.chunks))

        return cached_app

    return wrap


class Recorder:
    """Passes every message on at once, keeping a copy while the body stays small."""

    def __init__(self, send):
        self.send = send
        self.start = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False
        self.too_big = False

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body" and not self.too_big:
            body = message.get("body", b"")
            self.size += len(body)
            if self.size > MAX_ENTRY_BYTES:
                self.too_big, self.chunks = True, []
            else:
                self.chunks.append(body)
                self.complete = not message.get("more_body", False)
        await self.send(message)

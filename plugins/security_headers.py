"""A Content-Security-Policy on every HTML page, a second wall behind the sanitizer.

The bodies are sanitized at build time and again on the article page (SECURITY.md); if a
script ever slipped through anyway, the browser would still refuse to run it. The policy:

- `script-src 'self' 'nonce-…'`: scripts from this site, and inline scripts that carry this
  response's nonce. No `'unsafe-inline'`, so an injected `<script>` or `onerror=` runs
  nothing. The nonce is fresh per response; templates write it with `{{ csp_nonce() }}`
  (Datasette's templates that have inline scripts are overridden in templates/ to do so).
- no `'unsafe-eval'` anywhere: Vega, which draws the timeline, would compile its chart
  expressions with `new Function`; metadata.yml has vega-embed use its bundled
  interpreter instead (`usermeta: { embedOptions: { ast: true } }` on every chart).
- `style-src 'self' 'unsafe-inline'`: the templates carry `<style>` blocks and `style=`
  attributes (Datasette's own too); stored bodies never keep a `style` (the sanitizer).
- `img-src 'self' https: http: data:`: article images live on their publishers' sites.
- `default-src 'self'`, `object-src 'none'`, `base-uri 'none'`, `frame-ancestors 'none'`,
  `form-action 'self'`.

Every response, HTML or not, also gets `X-Content-Type-Options: nosniff` and
`Referrer-Policy: no-referrer`.

The nonce reaches templates through a context variable that this wrapper sets for the
request it handles, read by the Jinja global `csp_nonce()`: error pages that Datasette and
our plugins render without `extra_template_vars` get it too. This wrapper sits inside the
response cache (plugins/response_cache.py, trylast: the outermost wrapper), so a cached page
is stored and replayed with the header that matches its nonce; and outside the plugins that
refuse bad requests themselves (cjk_search.py, bad_params.py, tryfirst), so their error
pages carry the policy too.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar

from datasette import hookimpl

NONCE: ContextVar[str] = ContextVar("csp_nonce", default="")
POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' https: http: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
EVERY_RESPONSE = {b"x-content-type-options": b"nosniff", b"referrer-policy": b"no-referrer"}


def content_security_policy(nonce: str) -> str:
    return POLICY.format(nonce=nonce)


def is_html(headers) -> bool:
    return any(k.lower() == b"content-type" and v.lower().startswith(b"text/html") for k, v in headers)


def with_security_headers(headers, nonce: str) -> list:
    """`headers` with ours set (replacing any earlier value of the same name)."""
    ours = dict(EVERY_RESPONSE)
    if is_html(headers):
        ours[b"content-security-policy"] = content_security_policy(nonce).encode("ascii")
    return [(k, v) for k, v in headers if k.lower() not in ours] + list(ours.items())


@hookimpl
def prepare_jinja2_environment(env):
    # `{{ csp_nonce() }}`: the nonce of the response being rendered ("" outside a request).
    env.globals["csp_nonce"] = NONCE.get


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def security_headers(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            nonce = secrets.token_urlsafe(18)  # 144 bits

            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    headers = with_security_headers(message.get("headers") or [], nonce)
                    message = {**message, "headers": headers}
                await send(message)

            token = NONCE.set(nonce)
            try:
                await app(scope, receive, send_with_headers)
            finally:
                NONCE.reset(token)

        return security_headers

    return wrap

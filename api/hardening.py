"""Response headers that harden every answer: CSP, no framing, no referrer, no sniffing.

Added in ``on_response_prepare`` (the moment before headers leave), so problem
answers, streams and 304s get them too:

- ``Content-Security-Policy``: on HTML pages :data:`PAGE_POLICY` — scripts, styles,
  images and connections from this origin only, no inline script or style (the pages
  are files; ``<herald-inbox>`` adopts a constructed style sheet), no plugins, no
  ``<base>``; on everything else :data:`API_POLICY` (an API answer has nothing to
  load). Both carry ``frame-ancestors 'none'``: no page of Herald can be framed
  (clickjacking of the operator page), with ``X-Frame-Options: DENY`` for old browsers.
- ``Referrer-Policy: no-referrer``: a token in a URL (``?access_token=``) never
  leaks to another site through the Referer header.
- ``X-Content-Type-Options: nosniff`` everywhere.

Nothing here fails: the headers are constants.
"""

from __future__ import annotations

from aiohttp import web

PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
               "form-action 'self'; object-src 'none'; frame-ancestors 'none'")
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
HEADERS = {"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
           "X-Frame-Options": "DENY"}


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(HEADERS)
    html = response.content_type == "text/html"
    response.headers.setdefault("Content-Security-Policy", PAGE_POLICY if html else API_POLICY)


def setup(app: web.Application) -> None:
    """Add the headers to every answer of ``app``."""
    app.on_response_prepare.append(_on_prepare)

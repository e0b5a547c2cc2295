"""Error responses must be cheap: no pretty traceback with every local on the event loop.

Datasette 0.65's default `handle_exception` prints each error, even a 404 or a refused
`?sql=`, with `rich` and `show_locals=True` when rich is installed (typer brings it). That
rendering runs on the event loop and, with this project's metadata in the locals, takes
0.5-1.5 s of CPU per error, during which the server answers no one: ten 404s in a row held
up a healthy request for 5 s. Without rich, Datasette answers 4xx errors without printing
anything and still prints a plain traceback for a 500, so real bugs remain in the log; the
access log keeps one line per request either way.
"""

from __future__ import annotations

import datasette.handle_exception

datasette.handle_exception.rich = None

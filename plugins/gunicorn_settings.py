"""Gunicorn's settings when several workers serve (`build_db.py serve --workers N`).

datasette-gunicorn runs `datasette gunicorn` with the options of `datasette serve`, and
gives gunicorn only where to listen and how many workers; it reads no gunicorn settings
from the environment or a file. Gunicorn's defaults then differ from what one
`datasette serve` process does, so this module adds, to the application it builds:

- an access log on standard output, a line a request, as uvicorn prints for `datasette serve`
  (gunicorn's default is none: requests would vanish from the platform's logs);
- uvicorn's keep-alive of 5 s (gunicorn's default is 2);
- no control socket: gunicorn 27 opens one at `~/.gunicorn/gunicorn.ctl`, one path for every
  server on the machine;
- the worker class of uvicorn-worker, the package uvicorn moved its gunicorn worker to
  (`uvicorn.workers`, which datasette-gunicorn names, is deprecated).

Datasette loads this module while `datasette gunicorn` makes its Datasette, before the
gunicorn application is built; under `datasette serve` it changes nothing.
"""

from __future__ import annotations

try:
    import datasette_gunicorn
except ImportError:  # not installed: nothing serves under gunicorn
    datasette_gunicorn = None

SETTINGS = {
    "accesslog": "-",
    "keepalive": 5,
    "control_socket_disable": True,
    "worker_class": "uvicorn_worker.UvicornWorker",
}


def with_our_settings(load_config):
    def load_config_and_ours(self):
        load_config(self)
        for name, value in SETTINGS.items():
            if name in self.cfg.settings:  # an older gunicorn lacks the control socket
                self.cfg.set(name, value)

    load_config_and_ours.adds_our_settings = True
    return load_config_and_ours


if datasette_gunicorn is not None:
    application = datasette_gunicorn.StandaloneApplication
    if not getattr(application.load_config, "adds_our_settings", False):  # a plugins dir loaded twice
        application.load_config = with_our_settings(application.load_config)

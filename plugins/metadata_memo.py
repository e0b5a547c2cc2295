"""Settings and permissions read from metadata once, not on every cell and every check.

Datasette 0.65 merges metadata.yml afresh on every `datasette.plugin_config(...)` (which
datasette-render-html calls for every cell of every table page: 800 on a page of 50
articles) and deep-copies all of it on every table permission check (`view-table`, several
a page). That work grows with metadata.yml, and the answers cannot change while the server
runs: the metadata is read once at start, and no installed plugin supplies metadata of its
own (`get_metadata`). So both are remembered per Datasette instance, for each set of
arguments (plugin settings only for the plugins that render cells, which only read them);
if a `get_metadata` plugin is ever installed, nothing is remembered.

The key includes the identity of the metadata Datasette holds, so an instance given new
metadata (`datasette._metadata_local = …`) is answered from it. `$env` secrets in plugin
settings are read once, at the first look-up.

A URL can name any table (`/posts/<anything>/1` checks its permission before Datasette
finds there is no such table), so each method keeps at most KEPT answers, the first
asked going first: a flood of made-up names costs the site's own answers one look-up
each when next asked.
"""

from __future__ import annotations

import functools

from datasette.app import Datasette
from datasette.plugins import pm

KEPT = 256  # answers a method keeps, per Datasette instance
# The plugins whose settings are asked for on every cell. An answer remembered is one object
# shared by every later caller, and some plugins write into theirs (datasette-dashboards
# adds its filters to the config it is given): only these, which only read theirs, get one.
CELL_RENDERERS = {"datasette-render-html", "datasette-render-markdown"}
# Each method remembered, and which of its calls (their positional arguments).
REMEMBERED = {
    "plugin_config": lambda args: bool(args) and args[0] in CELL_RENDERERS,
    "_table_permission_allows": lambda args: True,  # a yes or a no
}


def remembered(method, shared):
    attribute = f"_remembered_{method.__name__}"

    @functools.wraps(method)
    def lookup(self, *args, **kwargs):
        if not shared(args) or pm.hook.get_metadata.get_hookimpls():
            return method(self, *args, **kwargs)
        # Looked up 1,700 times on a page of 50 articles: a plain dict, the key as the call
        # spells it (its call sites always name the same arguments in the same order).
        answers = self.__dict__.setdefault(attribute, {})
        key = (id(self._metadata_local), args, tuple(kwargs.items()))
        try:
            return answers[key]
        except KeyError:
            if len(answers) >= KEPT:  # the oldest goes first; the site's own come back at their next call
                del answers[next(iter(answers))]
            answer = answers[key] = method(self, *args, **kwargs)
            return answer

    lookup.remembers = method
    return lookup


for name, shared in REMEMBERED.items():
    method = getattr(Datasette, name)
    if not hasattr(method, "remembers"):  # a plugins dir loaded twice in one process
        setattr(Datasette, name, remembered(method, shared))

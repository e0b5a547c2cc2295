"""Chinese search in Datasette's own search box: `escape_fts` means "contains".

Datasette runs `… match escape_fts(:search)` for `?_search=`; this replaces its SQL
function with `postsdb.search.fts_query`, which speaks the index's language (bigrams of
normalized text, see postsdb/search.py). `trylast=True` makes this registration run after
Datasette's built-in one, so it is the one that stays.
"""

from datasette import hookimpl

from postsdb.search import fts_query


@hookimpl(trylast=True)
def prepare_connection(conn):
    conn.create_function("escape_fts", 1, fts_query, deterministic=True)

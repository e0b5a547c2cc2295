"""Bad URL parameters: a 400 that names the parameter, never a 500 (plugins/bad_params.py).

The hostile client's URLs get a 400 naming what was wrong, as JSON for `.json` and as the
site's error page otherwise; the site's own links still work; a property-based fuzz puts
junk into every parameter Datasette reads (and into unknown ones) on table, row, query and
canned-query pages and finds no 5xx; a real fault is still a 500, and logged.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from postsdb.params import LOOKUPS
from postsdb.serve import running_server
from test_serve import RICH_ID, load_plugin, make_datasette


class App:
    """The in-process site on one event loop of its own, so hypothesis can drive it from a
    plain (synchronous) test."""

    def __init__(self, ds):
        self.ds = ds
        self.loop = asyncio.new_event_loop()

    def get(self, url: str) -> httpx.Response:
        return self.loop.run_until_complete(self.ds.client.get(url))


@pytest.fixture(scope="module")
def app(site_db, site_inspect):
    app = App(make_datasette(site_db, site_inspect))
    yield app
    app.loop.close()


def error_message(response: httpx.Response) -> str:
    """The message of an error response: JSON's `error`, or the error page's text."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return str(response.json().get("error") or "")
    page = LexborHTMLParser(response.text)
    for selector in (".content div[style*='solid red']", ".message-error"):
        if (node := page.css_first(selector)) is not None and node.text(strip=True):
            return node.text(strip=True)
    return ""


def assert_answered_well(url: str, response: httpx.Response) -> None:
    """No 5xx; a 4xx says what was wrong."""
    assert response.status_code < 500, (url, response.status_code, response.text[:800])
    if 400 <= response.status_code < 500:
        assert error_message(response), (url, response.status_code, response.text[:800])


# --- the hostile client's URLs -------------------------------------------------------

# (URL, the parameter the 400 must name). Each of these was a 500 from Datasette 0.65, or
# was silently ignored.
HOSTILE = [
    ("/posts/articles.json?_through=*", "_through"),
    ("/posts/articles.json?_through=[]", "_through"),
    ('/posts/articles.json?_through={"table":"nope","column":"x","value":1}', "_through"),
    ('/posts/articles.json?_through={"table":"links","column":"href","value":{}}', "_through"),
    ("/posts/articles.json?_sort=*", "_sort"),
    ("/posts/articles.json?_sort_desc=*", "_sort_desc"),
    ("/posts/articles.json?_sort=title&_sort_desc=title", "_sort_desc"),
    ("/posts/articles.json?title__date=nope", "title__date"),
    ("/posts/articles.json?title__nope=1", "title__nope"),
    ("/posts/articles.json?nope__gt=1", "nope__gt"),
    ("/posts/articles.json?_shape=1e309", "_shape"),
    ("/posts.json?sql=select+1&_shape=object", "_shape"),
    ("/posts/articles.json?id__in=[1,", "id__in"),
    ("/posts/articles.json?id__in=[[1]]", "id__in"),
    ("/posts/articles.json?id__in=[99999999999999999999999]", "id__in"),
    ("/posts/articles.json?title__gt=999999999999999999999999999999", "title__gt"),
    ("/posts/articles.json?word_count__gte=99999999999999999999", "word_count__gte"),
    ("/posts/articles.json?id__gt=%C2%B2", "id__gt"),  # '²': a digit to isdigit(), no number to int()
    ("/posts/articles.json?word_count__lte=%E2%91%A0", "word_count__lte"),  # '①'
    ("/posts/articles.json?_json=%5C", "_json"),
    ("/posts/articles.json?title=a%00b", "title"),
    ("/posts/articles.json?%00=1", "\x00"),
    ("/posts/articles.json?_timelimit=x", "_timelimit"),
    ("/posts.json?sql=select+1&_timelimit=x", "_timelimit"),
    ("/posts/feed.json?_timelimit=x", "_timelimit"),
    ("/posts/articles.json?_ttl=%C2%B2", "_ttl"),
    ("/posts/articles.json?_facet=source&_facet_size=%C2%B2", "_facet_size"),
    ("/posts/articles.json?_facet=%7B", "_facet"),
    ("/posts/articles.json?_facet_nope=source", "_facet_nope"),
    ("/posts/articles.json?_searchx=1", "_searchx"),
    ("/posts/articles.json?_search_nope=x", "_search_nope"),
    ("/posts/articles.json?_searchmode=zz&_search=x", "_searchmode"),
    ("/posts/links.json?_search=x", "_search"),
    ("/posts/articles.json?_json_infinity=x", "_json_infinity"),
    ("/posts/articles.json?_next=,,,", "_next"),
    ("/posts/images.json?_next=abc", "_next"),
    ("/posts/articles.json?_where=((", "_where"),
    ("/posts/articles.json?_where=id=1;select+1", "_where"),
    ("/posts/articles.json?_where=nope=1", "_where"),
    ("/posts/search.json?q=%00", "q"),
    ("/-/dashboards/archive.json?x=%00", "x"),
]


@pytest.mark.parametrize("url, parameter", HOSTILE, ids=[url for url, _ in HOSTILE])
def test_hostile_parameters_get_a_400_that_names_them(app, url, parameter):
    response = app.get(url)
    assert response.status_code == 400, (url, response.text[:500])
    body = response.json()
    assert body["ok"] is False and body["status"] == 400 and body["parameter"] == parameter, body
    assert body["error"].startswith(parameter.replace("\x00", "\\u0000")), body


def test_html_pages_get_the_error_page_naming_the_parameter(app):
    response = app.get("/posts/articles?_sort=*")
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
    assert "Bad parameter" in response.text and error_message(response).startswith("_sort=*:")
    assert "content-security-policy" in response.headers  # the error page is a page like any other


def test_the_first_request_may_be_a_bad_one(site_db, site_inspect):
    """The error page renders even when nothing has run Datasette's startup hooks yet."""
    fresh = App(make_datasette(site_db, site_inspect))
    try:
        response = fresh.get("/posts/articles?_timelimit=x")
        assert response.status_code == 400 and error_message(response).startswith("_timelimit=x:")
    finally:
        fresh.loop.close()


@pytest.mark.parametrize(
    "url",
    [
        "/posts/articles?_sort=&_sort_desc=published",  # the filter form sends an empty _sort
        "/posts/articles.json?_size=0&_facet=source&_facet_size=max&_labels=on",
        "/posts/articles.json?_facet=%7B%22simple%22%3A%22source%22%7D",
        "/posts/articles.json?_facet_date=published&published__date=2023-05-06",
        "/posts/articles.json?_facet_array=tags&tags__arraycontains=%E6%B5%8B%E8%AF%95",
        "/posts/articles.json?id__in=1,2&id__notin=[3,%22x%22,null]",
        "/posts/articles.json?_search_title=" + quote("富文本") + "&_searchmode=escaped",
        "/posts/articles.json?_col=title&_nocol=url&_json=tags&_shape=object",
        '/posts/articles.json?_through={"table":"links","column":"domain","value":"other.example.org"}',
        "/posts/articles.json?_where=" + quote("word_count > 0 and title like '%测试%'"),
        "/posts/articles.json?_next=2022-12-31T23:00:00Z," + str(RICH_ID),
        "/posts/images.json?_sort=src&_next=x,1,0",
        "/posts/links.json?_next=1,0&_timelimit=500&_ttl=0",
        f"/posts/articles/{RICH_ID}.json?_shape=objects&_json=tags",
        "/posts/search.json?q=" + quote("富文本") + "&_shape=array",
        "/posts.json?sql=select+:a&a=1&_shape=objects&_json=a",
        "/posts/articles.json?_unknown=whatever&_nocount=1",
    ],
)
def test_good_parameters_still_work(app, url):
    response = app.get(url)
    assert response.status_code == 200, (url, response.text[:500])


def site_links(page_html: str) -> list[str]:
    links = []
    for node in LexborHTMLParser(page_html).css("a[href]"):
        parts = urlsplit(node.attributes["href"] or "")
        if parts.scheme in ("", "http") and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
            links.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return list(dict.fromkeys(links))


@pytest.mark.parametrize(
    "page",
    [
        "/posts/articles",
        "/posts/articles?_facet_date=published&_facet_array=tags&_sort=title&_size=1",
        "/posts/links?_facet=domain&_size=2",
        "/posts/images?_sort_desc=src&_size=1",
        f"/posts/articles/{RICH_ID}",
    ],
)
def test_the_sites_own_links_pass_the_checks(app, page):
    """Every link a page offers (facets, sorting, next page, columns, formats) is answered."""
    links = site_links(app.get(page).text)
    assert len(links) > 5, links
    for link in links[:80]:
        response = app.get(link)
        assert response.status_code < 400, (page, link, response.status_code, error_message(response))


# --- fuzz: junk in every parameter --------------------------------------------------

NASTY = [
    "", "*", "(", ")", "\\", "\x00", "a\x00b", "1e309", "-1", "0", "1", "500", "501", "max", "[", "{",
    "[1,", "[]", "{}", "[[1]]", "[{}]", "[99999999999999999999999]", '["a",1,null]', '{"simple": "source"}',
    '{"table": "links", "column": "href", "value": "x"}', '{"table": "links", "column": "nope", "value": 1}',
    '{"table": "x"}', "nope", "id", "title", "tags", "published", "source", "rowid", "'", '"', ";",
    "1; select 1", "1=1", "id > 0 --", "((", "json_extract(title, '$')", "$null", ",", ",,", "~", "~2C",
    "%", "9" * 30, "²", "٣", "true", "on", "raw", "escaped", "array", "object", "objects", "2021-01-18",
    "2021-99-99", "腾讯", "騰訊 香港", "<script>alert(1)</script>", "\u3000", "\n", "a" * 300,
]
LOOKUP_KEYS = [f"{column}__{lookup}" for column in ("id", "title", "published", "tags", "nope") for lookup in (*LOOKUPS, "nope")]
KNOWN = [
    "_sort", "_sort_desc", "_facet", "_facet_array", "_facet_date", "_facet_size", "_facet_nope", "_through",
    "_where", "_next", "_size", "_shape", "_col", "_nocol", "_json", "_timelimit", "_search", "_searchmode",
    "_search_title", "_search_nope", "_searchx", "_fts_table", "_fts_pk", "_labels", "_label", "_json_infinity",
    "_ttl", "_nocount", "_nofacet", "_nl", "_trace", "_stream", "_dl", "_extras", "_filter_column", "_filter_op",
    "_filter_value", "_sort_by_desc", "_hide_sql", "sql", "q", "tag", "source", "id", "title",
]
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
VALUES = st.one_of(st.sampled_from(NASTY), TEXT)
NAMES = st.one_of(st.sampled_from(KNOWN), st.sampled_from(LOOKUP_KEYS), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12))
PARAMETERS = st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=4)

PAGES = {
    "table": ["/posts/articles", "/posts/articles.json", "/posts/links", "/posts/images.json", "/posts/article_bodies.json", "/posts/tags.csv"],
    "row": [f"/posts/articles/{RICH_ID}", f"/posts/articles/{RICH_ID}.json", f"/posts/images/{RICH_ID},0.json", f"/posts/article_bodies/{RICH_ID}"],
    "query": ["/posts?sql=select+id,+title+from+articles+where+id+>+:n&n=1", "/posts.json?sql=select+1", "/posts.csv?sql=select+:a&a=x", "/posts"],
    "canned": ["/posts/search?q=" + quote("腾讯"), "/posts/search.json", "/posts/feed", "/posts/feed.atom", "/posts/tag_cooccurrence.json?tag=" + quote("测试"), "/posts/latest_by_source?source=" + quote("样例新闻"), "/posts/most_images.json"],
}
EXAMPLES = 120  # per kind of page: about 500 URLs in all, some 20-40 s in-process


def with_parameters(page: str, pairs) -> str:
    return page + ("&" if "?" in page else "?") + urlencode(pairs)


@pytest.mark.parametrize("kind", PAGES)
def test_fuzz_no_junk_parameter_gets_a_5xx(app, kind, capsys):
    statuses = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(page=st.sampled_from(PAGES[kind]), pairs=PARAMETERS)
    def check(page, pairs):
        url = with_parameters(page, pairs)
        response = app.get(url)
        statuses[response.status_code] += 1
        assert_answered_well(url, response)

    check()
    with capsys.disabled():
        print(f"\n{kind}: {sum(statuses.values())} junk URLs, statuses {dict(sorted(statuses.items()))}")
    # The fuzz reached both sides: requests refused and requests answered.
    assert statuses[400] > 0 and sum(n for status, n in statuses.items() if status < 400) > 0, statuses
    # And the site still serves a normal page.
    page = app.get("/posts/articles")
    assert page.status_code == 200 and "article-item" in page.text


# --- real faults stay 500 --------------------------------------------------------------


def test_a_real_fault_is_still_a_500_and_logged(app, monkeypatch, capfd):
    import datasette.filters

    def broken(self, table):
        int("server-side")  # a ValueError about a value no client sent

    monkeypatch.setattr(datasette.filters.Filters, "build_where_clauses", broken)
    for url in ("/posts/articles.json?title=x", "/posts/articles.json?_timelimit=5&_size=2"):
        response = app.get(url)
        assert response.status_code == 500, (url, response.text[:300])
    assert "server-side" in capfd.readouterr().err  # the traceback is in the log


def test_only_errors_about_a_parameter_the_client_sent_become_400s():
    plugin = load_plugin("bad_params")
    from datasette.views.base import DatasetteError

    def about(exception, url):
        parts = urlsplit(url)
        from urllib.parse import parse_qsl

        return plugin.about_a_parameter(exception, parts.path, parse_qsl(parts.query, keep_blank_values=True))

    assert about(DatasetteError("Cannot sort table by *"), "/posts/articles?_sort=*")[0] == "_sort"
    assert about(ValueError("invalid literal for int() with base 10: 'x'"), "/posts/feed?_timelimit=x")[0] == "_timelimit"
    json_error = pytest.raises(ValueError, __import__("json").loads, "[1,").value
    assert about(json_error, "/posts/articles?id__in=[1,")[0] == "id__in"
    # The same kinds of error with nothing in the request to explain them: the server's fault.
    assert about(DatasetteError("Cannot sort table by *"), "/posts/articles?title=x") is None
    assert about(ValueError("invalid literal for int() with base 10: 'x'"), "/posts/feed?title=x") is None
    assert about(ValueError("invalid literal for int() with base 10: 'x'"), "/posts/feed?q=x") is None
    assert about(KeyError("table"), "/posts/articles?_through=x") is None
    assert about(RuntimeError("boom"), "/posts/articles?_sort=*") is None
    sql_error = DatasetteError("malformed JSON", title="Invalid SQL", status=400)
    parameter, message = about(sql_error, "/posts/articles.json?_facet_array=title")
    assert parameter == "_facet_array" and "_facet_array" in message and "malformed JSON" in message


# --- the real server ------------------------------------------------------------------


def test_the_served_site_answers_junk_with_400s_and_keeps_serving(site_db):
    with running_server(site_db) as base, httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
        for url, parameter in HOSTILE[:12] + [("/posts/articles?_through=*", "_through")]:
            response = client.get(url)
            assert response.status_code == 400, (url, response.text[:300])
            assert error_message(response).startswith(re.sub("\x00", "\\\\u0000", parameter)), url
        page = client.get("/posts/articles")
        assert page.status_code == 200 and "article-item" in page.text

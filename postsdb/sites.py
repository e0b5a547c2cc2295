"""What the project knows about each site, declared once, as data.

The extraction code (`postsdb.meta`, `postsdb.parse`) reads the web's own conventions first
(microformats, `<meta>`, JSON-LD) and stays generic. A site gets an entry here only for what
no convention says: the name its mirror appends to titles, or where a republished piece
first appeared. Adding a site means adding a `Site(...)`, not an `if`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Publication:
    """A republisher names the original publication in its URL: `path` captures a slug.

    `names` spells each known slug as readers know the publication. An unknown slug takes
    the text of the page's category link to `category_path` (the site's own spelling), or,
    failing that, the slug itself.
    """

    path: re.Pattern
    names: dict[str, str] = field(default_factory=dict)
    category_path: str = ""  # a format with {slug}: the category page of the publication

    def slug(self, url: str) -> str | None:
        match = self.path.match(unquote(urlsplit(url).path))
        return match.group(1).lower() if match else None


TAIL_LINES = 4  # where a closing byline ("记者乔龙 责编 …") is looked for


@dataclass(frozen=True)
class Site:
    name: str  # as the mirror's front matter spells it (`categories`, `tags`, `author`)
    hosts: tuple[str, ...] = ()  # where its articles live; subdomains included
    title_suffixes: tuple[str, ...] = ()  # what the scraper appended to every title
    publication: Publication | None = None  # set for sites that republish or translate
    # One person's own feed: the site's name is that person's, and a byline.
    personal: bool = False
    # A byline the site writes into the text, where no markup names the author: group 1 of
    # a match in the last lines of the text is the name.
    text_byline: re.Pattern | None = None

    def text_author(self, text: str) -> str | None:
        if self.text_byline is None:
            return None
        for line in reversed(text.splitlines()[-TAIL_LINES:]):
            match = self.text_byline.search(line)
            if match:
                return match.group(1)
        return None


SITES = (
    # Each report ends "记者乔龙  责编 胡力汉 许书婷  网编：郭度": the reporter signs it.
    Site("自由亚洲电台", hosts=("rfa.org",), text_byline=re.compile(r"(?:^|\s)(?:特约)?记者[：:\s]*([^\s：:，,、]{2,12})")),
    Site("iYouPort", hosts=("iyouport.org",), title_suffixes=(" - iYouPort",)),
    Site(
        "Nei.st",
        hosts=("nei.st",),
        # Translations: nei.st/medium/<publication>/<slug>; the category link names it too.
        publication=Publication(
            path=re.compile(r"^/medium/([^/]+)/"),
            names={
                "economist": "The Economist",
                "caixin": "Caixin Weekly",
                "bloomberg": "Bloomberg",
                "southern": "南方周末",
                "initium": "Initium Media",
                "nytimes": "The New York Times",
                "wsj": "The Wall Street Journal",
                "yimag": "YiMagazine",
                "lifeweek": "三联生活周刊",
            },
            category_path="/category/medium/{slug}",
        ),
    ),
    Site("泡泡", hosts=("pao-pao.net",)),
    Site("燕京书评", hosts=("allnow.com",)),
    Site("Matters", hosts=("matters.news",)),
    Site("中参馆", hosts=("chinafile.com",)),
    Site("medium", hosts=("medium.com",)),
    Site("Huli", hosts=(), personal=True),  # a medium.com author's own feed: found by name, not by host
)
BY_NAME = {site.name.casefold(): site for site in SITES}


def site_for(source: str | None, url: str) -> Site:
    """The declaration for a post: by the mirror's source name, else by the URL's host.
    A site nobody declared gets an empty one named after its source."""
    if source and source.casefold() in BY_NAME:
        return BY_NAME[source.casefold()]
    host = (urlsplit(url).hostname or "").lower()
    for site in SITES:
        if any(host == h or host.endswith("." + h) for h in site.hosts):
            return site
    return Site(source or host)


def names_a_site(name: str, source: str | None) -> bool:
    """The mirror writes its site's name into `author`, `tags` and `categories`: `name` is
    the post's source or a declared site's name."""
    folded = name.casefold()
    return folded == (source or "").casefold() or folded in BY_NAME


def stands_for_a_site(name: str, source: str | None) -> bool:
    """`name`, as an author, is a site's name and not a byline: a personal site's name
    is its author's."""
    site = BY_NAME.get(name.casefold())
    return names_a_site(name, source) and not (site and site.personal)


def strip_title_suffix(title: str, site: Site) -> str:
    """Drop the site name the scraper appended; anything else in a title stays."""
    for suffix in site.title_suffixes:
        if title.endswith(suffix) and title[: -len(suffix)].strip():
            return title[: -len(suffix)].rstrip()
    return title

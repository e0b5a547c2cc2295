"""What reading a page's own metadata (authors, categories, tags) costs the build.

    python bench/harvest.py            # the sample in data/, each post parsed 5 times

In one run, on the same pages, in this process:
- "parse": `parse_post`, everything the build does to a file (front matter, body, metadata);
- "harvest": `read_page_meta` alone, on the page already parsed by lexbor, which is
  what the metadata adds to each file's parse;
- "mf2py" and "extruct" (when installed): the libraries made for reading microformats and
  embedded metadata, each parsing the page again, as the build would have to call them.
Target (metadata issue): the harvest costs at most 10% of the build.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

from benchlib import original_posts
from postsdb.body import collapse_layout_whitespace, unwrap_noscript
from postsdb.meta import read_page_meta
from postsdb.parse import PostError, parse_post, split_front_matter

TARGET = 0.10


def page_sources(posts: list[Path]) -> list[str]:
    pages = []
    for path in posts:
        try:
            _, body = split_front_matter(path.read_text(encoding="utf-8"))
        except PostError:
            continue
        pages.append(unwrap_noscript(collapse_layout_whitespace(body)))
    return pages


def seconds(work, items, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for item in items:
            work(item)
        best = min(best, time.perf_counter() - started)
    return best


def library(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measure; the fastest is shown (default 5)")
    args = parser.parse_args()
    posts = original_posts()
    pages = page_sources(posts)
    trees = [LexborHTMLParser(page) for page in pages]
    parse_s = seconds(lambda p: parse_post(p, p.name), posts, args.repeat)
    harvest_s = seconds(read_page_meta, trees, args.repeat)
    print(f"{len(posts)} posts, best of {args.repeat} runs")
    print(f"  parse (the build's work per file)  {parse_s:7.3f} s  {len(posts) / parse_s:8.0f} posts/s")
    print(f"  harvest (read_page_meta)           {harvest_s:7.3f} s  {len(pages) / harvest_s:8.0f} posts/s")
    share = harvest_s / parse_s
    print(f"  harvest / parse                    {share:7.1%}   target <= {TARGET:.0%}: {'met' if share <= TARGET else 'MISSED'}")
    mf2py, extruct = library("mf2py"), library("extruct")
    if mf2py is not None:
        mf2_s = seconds(lambda page: mf2py.parse(doc=page, html_parser="lxml"), pages, 1)
        print(f"  mf2py.parse (one run)              {mf2_s:7.3f} s  {len(pages) / mf2_s:8.0f} posts/s  ({mf2_s / parse_s:.1f}x the whole parse)")
    if extruct is not None:
        ex_s = seconds(lambda page: extruct.extract(page, syntaxes=["json-ld", "microdata", "opengraph", "rdfa"]), pages, 1)
        print(f"  extruct.extract (one run)          {ex_s:7.3f} s  {len(pages) / ex_s:8.0f} posts/s  ({ex_s / parse_s:.1f}x the whole parse)")


if __name__ == "__main__":
    main()

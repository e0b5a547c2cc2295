"""Is a new build fit to replace the published one? `build_db.py check-release`.

A scheduled release must not publish a broken archive: a mirror that lost half its files,
a parser change that turns good posts into problems, a truncated database. So, against the
previous build (when there is one), a new build is refused when:

- it fails SQLite's `quick_check`, or has no articles;
- it has more than `max_drop` (default 3%) fewer articles than the previous build;
- one of its problems is of a kind the previous build did not have.

A problem's kind is its reason without the file's particulars: `invalid YAML in front
matter: line 3, …` and `… line 9, …` are one kind; `file is empty` is another.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

MAX_DROP = 0.03
# A number on its own (1,234 or 33,554,432-byte), not a part of a name such as UTF-8.
NUMBER = re.compile(r"(?<![\w-])\d+(?:[,.]\d+)*")


@dataclass
class Build:
    articles: int
    problem_kinds: dict[str, int]  # kind → how many files


@dataclass
class Verdict:
    current: Build
    previous: Build | None
    refusals: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


def problem_kind(reason: str) -> str:
    """The reason without what is particular to one file: the text before its first `: `
    (after it come quoted values, YAML positions, exception texts), numbers as N."""
    return NUMBER.sub("N", reason.split(": ", 1)[0]).strip()


def read_build(db: Path) -> Build:
    """Counts from a database built by build_db.py, opened read-only."""
    with contextlib.closing(sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)) as conn:
        (check,) = conn.execute("pragma quick_check").fetchone()
        if check != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {check}")
        (articles,) = conn.execute("select count(*) from articles").fetchone()
        kinds: dict[str, int] = {}
        for (reason,) in conn.execute("select reason from problems"):
            kind = problem_kind(reason)
            kinds[kind] = kinds.get(kind, 0) + 1
    return Build(articles, kinds)


def judge(current: Build, previous: Build | None, max_drop: float = MAX_DROP) -> Verdict:
    verdict = Verdict(current, previous)
    if current.articles == 0:
        verdict.refusals.append("the new build has no articles")
    if previous is None:
        return verdict
    floor = previous.articles * (1 - max_drop)
    if current.articles < floor:
        verdict.refusals.append(
            f"articles fell from {previous.articles:,} to {current.articles:,} "
            f"({drop_percent(previous.articles, current.articles)} fewer; at most {max_drop:.0%} allowed)"
        )
    for kind in sorted(set(current.problem_kinds) - set(previous.problem_kinds)):
        verdict.refusals.append(f"a new kind of problem ({current.problem_kinds[kind]} file(s)): {kind}")
    return verdict


def drop_percent(before: int, after: int) -> str:
    return f"{(before - after) / before:.1%}" if before else "n/a"


def check_release(current: Path, previous: Path | None, max_drop: float = MAX_DROP) -> Verdict:
    """Judge the build in `current` against the one in `previous` (None or a missing file:
    the first release, judged on its own)."""
    before = read_build(previous) if previous is not None and previous.is_file() else None
    return judge(read_build(current), before, max_drop)

"""Shared pieces of the benchmarks: the scaled-up corpus, measured subprocesses, the floor.

The corpus is the real sample the project ships in `data/`, copied
N times into a temporary folder. Copy k of a post gets `-copy-k` appended to the path of
its `from:` URL (so it is a different article: query strings may be stripped as tracking
parameters, paths never are), ` #k` appended to its title, and a `k-` file name prefix.

Copies differ in their text, so that the build's relations between texts (copies, related
articles: postsdb/relations.py) meet the shape of a real archive, not 29 copies of every
article: copy k drops the tokens (a CJK character or a Latin word, in text, never in a
tag) at 8 of every 30 positions, which 8 chosen by k. Two copies of one post then share
about a twentieth of their five-token shingles (no copies), and most of their words (their
related lists find each other, as articles on one subject do). As in the archive, a few
posts are cross-posted: every COPIED_EVERY-th post keeps its text whole in copies 1 and 2.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data"  # the real sample the project ships
CORPUS_SOURCES = (CORPUS / "seed", CORPUS / "posts")
POST_SUFFIXES = frozenset({".md", ".markdown", ".html", ".htm", ".txt"})

FRONT_MATTER_END = re.compile(r"^---[ \t]*$", re.M)
FROM_LINE = re.compile(r"^(from:[ \t]*)(\S.*?)[ \t]*$", re.M)
QUOTED_TITLE = re.compile(r'^(title:[ \t]*")(.+)("[ \t]*)$', re.M)
SUMMARY_SECONDS = re.compile(r"; ([\d.]+) s; (?:wrote|left) ")
TAG_OR_TEXT = re.compile(r"(<[^>]*>)")
TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[A-Za-z]+")
PERIOD, DROPPED = 30, 8  # copy k drops the tokens at 8 of every 30 positions
COPIED_EVERY = 50  # every 50th post is left whole in copies 1 and 2: a cross-post


# --- the scaled-up corpus -------------------------------------------------------


def original_posts(sources=CORPUS_SOURCES) -> list[Path]:
    posts = []
    for source in sources:
        posts.extend(p for p in sorted(Path(source).rglob("*")) if p.is_file() and p.suffix.lower() in POST_SUFFIXES)
    if not posts:
        sys.exit(f"no post files under {', '.join(map(str, sources))}: is the sample in data/ there?")
    return posts


def copy_url(url: str, k: int) -> str:
    """The URL with `-copy-k` added to the end of its path (before any trailing slash)."""
    suffix = f"-copy-{k}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return url + suffix
    path = parts.path
    if path in ("", "/"):
        path = "/" + suffix[1:]
    elif path.endswith("/"):
        path = path[:-1] + suffix + "/"
    else:
        path += suffix
    return urlunsplit(parts._replace(path=path))


def copy_post(text: str, k: int, whole: bool = False) -> str:
    """Copy k of one post: a new `from:` URL and a new title, the body perturbed (as it was
    if `whole`)."""
    if not text.startswith("---\n"):
        return text
    end = FRONT_MATTER_END.search(text, 4)
    if end is None:
        return text
    front, rest = text[: end.start()], text[end.start() :]
    front = FROM_LINE.sub(lambda m: m.group(1) + copy_url(m.group(2), k), front, count=1)
    front = QUOTED_TITLE.sub(lambda m: f"{m.group(1)}{m.group(2)} #{k}{m.group(3)}", front, count=1)
    return front + (rest if whole else perturb(rest, k))


def perturb(html: str, k: int) -> str:
    """The text of `html` with the tokens at copy k's positions dropped; tags untouched."""
    dropped = frozenset(random.Random(k).sample(range(PERIOD), DROPPED))
    position = 0

    def keep_or_drop(match: re.Match) -> str:
        nonlocal position
        position += 1
        return "" if position % PERIOD in dropped else match.group(0)

    parts = TAG_OR_TEXT.split(html)
    for i in range(0, len(parts), 2):  # even parts are text, odd ones tags
        parts[i] = TOKEN.sub(keep_or_drop, parts[i])
    return "".join(parts)


def make_corpus(folder: Path, copies: int, posts: list[Path]) -> tuple[int, int]:
    """Write `copies` altered copies of every post into `folder`; return (files, bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = size = 0
    for index, post in enumerate(posts):
        data = post.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        for k in range(1, copies + 1):
            whole = index % COPIED_EVERY == 0 and k <= 2
            out = copy_post(text, k, whole).encode("utf-8") if text is not None else data
            (folder / f"{k}-{post.name}").write_bytes(out)
            files += 1
            size += len(out)
    return files, size


def append_paragraph(path: Path, n: int) -> None:
    """A real change to the body: one more paragraph at its end."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"\n<p>基准测试追加的第 {n} 段。Benchmark edit number {n}.</p>\n")


def post_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in POST_SUFFIXES)


# --- measured subprocesses ------------------------------------------------------


@dataclass
class Run:
    wall: float  # seconds, the whole process: interpreter start, imports, work
    inner: float | None  # seconds the program reports for its own work, if it does
    cpu: float  # user + system CPU seconds of the process: less sensitive to other load
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_measured(args: list[str], cwd: Path = ROOT, inner_pattern: re.Pattern = SUMMARY_SECONDS) -> Run:
    """Run `python *args` in `cwd`; its wall time, CPU time and its own peak RSS.

    `os.wait4` returns the resource usage of that one child, so each run's peak RSS is
    its own (RUSAGE_CHILDREN would be the maximum over every child so far).
    """
    env = {**os.environ, "COLUMNS": "500"}  # rich must not wrap the summary line
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): python {' '.join(args)}\n{stdout}\n{stderr}")
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    rss_mb = usage.ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1 << 10)
    match = inner_pattern.search(stdout)
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, float(match.group(1)) if match else None, cpu, rss_mb, stdout, stderr)


def snapshot_code(dest: Path) -> Path:
    """A copy of build_db.py and postsdb/ as they are now: the benchmark measures one
    version of the code even if the working tree is edited while it runs. (Run as a
    script from `dest`, build_db.py imports this postsdb/, not the installed one.)"""
    dest.mkdir(parents=True)
    shutil.copy2(ROOT / "build_db.py", dest / "build_db.py")
    shutil.copytree(ROOT / "postsdb", dest / "postsdb", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def build_command(code: Path, folder: Path, db: Path, search: bool) -> list[str]:
    return [str(code / "build_db.py"), "build", "--db", str(db), "--search" if search else "--no-search", str(folder)]


# --- the floor --------------------------------------------------------------------


def floor_seconds(files: list[Path], repeat: int = 3) -> float:
    """Read every file and parse it with the build's HTML parser, nothing else: the least
    any build of these files must cost. Best of `repeat` runs, in this process."""
    from selectolax.lexbor import LexborHTMLParser

    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for path in files:
            LexborHTMLParser(path.read_bytes().decode("utf-8", "replace"))
        best = min(best, time.perf_counter() - started)
    return best

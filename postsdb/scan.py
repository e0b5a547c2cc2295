"""Finding the post files below the source folders, and hashing them."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

POST_SUFFIXES = frozenset({".md", ".markdown", ".html", ".htm", ".txt"})


@dataclass
class SourceFile:
    path: Path  # where it is on disk
    rel: str  # how the database names it: relative to its SOURCE folder
    problem: str | None = None  # set when the file must not be read at all


@dataclass
class Scan:
    files: list[SourceFile]
    skipped: int




def scan_sources(sources: Iterable[Path]) -> Scan:
    """Every post file below the sources. Hidden folders are not entered; symlinks that
    lead outside their source folder, or nowhere, are reported, never followed; nor is
    anything that is not a regular file read."""
    sources = list(sources)
    base = common_base(sources)
    files, skipped, seen = [], 0, set()

    def add(path: Path, problem: str | None, folder_rel: str | None = None) -> None:
        if folder_rel is None:
            folder_rel = os.path.relpath(os.path.abspath(path.parent), base)
        rel = display_path(path.name if folder_rel == "." else f"{folder_rel}/{path.name}".replace(os.sep, "/"))
        if rel not in seen:  # a file reached twice (a folder and its subfolder both named)
            seen.add(rel)
            files.append(SourceFile(path, rel, problem))

    for source in sources:
        if source.exists() and not source.is_dir():  # a file named on the command line
            add(source, irregular_problem(source))
            continue
        if not source.is_dir():
            raise FileNotFoundError(f"{source}: no such folder")
        root = source.resolve()
        for folder, dirnames, filenames in os.walk(source):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            folder_rel = os.path.relpath(os.path.abspath(folder), base)  # once per folder
            for name in sorted(filenames):
                path = Path(folder) / name
                if path.suffix.lower() not in POST_SUFFIXES:
                    skipped += 1
                    continue
                add(path, unreadable_problem(path, root), folder_rel)
    return Scan(files, skipped)


def common_base(sources: list[Path]) -> str:
    """Paths are stored relative to this: the one source folder, or the folder that holds
    all of them, so `a/_posts/x.md` and `b/_posts/x.md` stay two files."""
    base = os.path.commonpath([os.path.abspath(source) for source in sources])
    return base if os.path.isdir(base) else os.path.dirname(base)


def unreadable_problem(path: Path, root: Path) -> str | None:
    """Why the file must not be opened, or None. A FIFO would block the build forever."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            return None  # the common case, in one system call: a plain file, not a link
        problem = outside_problem(path, root)
        if problem:
            return problem
        return irregular_problem(path)
    except RuntimeError:  # what Path.resolve raises for a symlink loop before Python 3.13
        return "symlink loop (not followed)"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink loop (not followed)"
        return f"cannot read: {error.strerror or error}"


def irregular_problem(path: Path) -> str | None:
    if not stat.S_ISREG(path.stat().st_mode):
        return "not a regular file (a FIFO, socket or device): not read"
    return None


def outside_problem(path: Path, root: Path) -> str | None:
    if not path.is_symlink():
        return None
    target = path.resolve()
    if target != root and root not in target.parents:
        return "symlink to a file outside the source folder (not followed)"
    return None


def display_path(rel: str) -> str:
    # File names that are not UTF-8 still get a printable, storable name, and a distinct
    # one: each bad byte becomes `\xNN` (with "replace", two names could become one path).
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def file_hash(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size



def hash_files(files: list[SourceFile]) -> dict[str, tuple[SourceFile, str | None, int]]:
    hashes = {}
    for source_file in files:
        if source_file.problem:
            hashes[source_file.rel] = (source_file, None, 0)
            continue
        try:
            digest, size = file_hash(source_file.path)
        except OSError as error:
            source_file.problem = f"cannot read: {error.strerror or error}"
            digest, size = None, 0
        hashes[source_file.rel] = (source_file, digest, size)
    return hashes

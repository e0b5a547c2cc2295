"""Parsing, on every core: parsing is pure, so it runs in worker processes."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from postsdb import relations, search
from postsdb.parse import Post, PostError, parse_post
from postsdb.scan import SourceFile

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARALLEL_FROM = 200  # fewer files than this are parsed in this process: no start-up cost
BATCH = 64


def parse_or_reason(source_file: SourceFile) -> Post | str:
    """The file's Post, or the reason it cannot be one: what `build` stores and `check` prints."""
    if source_file.problem:
        return source_file.problem
    try:
        return parse_post(source_file.path, source_file.rel)
    except PostError as error:
        return str(error).removeprefix(f"{source_file.rel}: ")
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    except RecursionError:
        return "HTML is nested too deeply to parse"



def prepare(source_file: SourceFile, with_search: bool) -> Post | str:
    """Everything about one file that needs no database: run in a worker process."""
    post = parse_or_reason(source_file)
    if not isinstance(post, str):
        normal = search.normalize(post.title or ""), search.normalize(post.body.text or "")  # normalized once, for both
        post.relation_features = relations.features(post.title, post.body.text, normal)
        if with_search:
            post.search_fields = search.index_fields(post.title, post.body.text, normal)
    return post


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, as `taskset` sets it), not all the
    machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_pool(workers: int, setup: Callable[[], None] | None = None) -> ProcessPoolExecutor:
    """Forked processes (they inherit this one's memory), each running `setup` first."""
    context = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=die_with, initargs=(os.getpid(), setup))


def die_with(parent: int, setup: Callable[[], None] | None = None) -> None:
    """A worker must not outlive a build that was killed: ask Linux to kill it too."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the build died before the request was made
        os._exit(1)
    if setup:
        setup()


def parse_all(files: list[SourceFile], with_search: bool) -> Iterator[tuple[SourceFile, Post | str]]:
    """Parsed files, in order. Parsing is pure and most of a build's time, so it runs in a
    process per core while this process writes; at most two batches are in flight, so memory
    stays flat however many files there are."""
    work = functools.partial(prepare, with_search=with_search)
    workers = usable_cpus()
    if workers < 2 or len(files) < PARALLEL_FROM:
        yield from ((f, work(f)) for f in files)
        return
    relations.warm_up()  # inherited by the forked workers
    with worker_pool(workers) as pool:
        pending: collections.deque = collections.deque()
        for start in range(0, len(files), BATCH):
            batch = files[start : start + BATCH]
            pending.append((batch, [pool.submit(work, f) for f in batch]))
            if start == 0:
                relations.warm_up_writer()  # while the workers start on the first batch
            if len(pending) > 2:
                yield from batch_results(*pending.popleft(), work)
        while pending:
            yield from batch_results(*pending.popleft(), work)


def batch_results(batch, futures, work) -> Iterator[tuple[SourceFile, Post | str]]:
    for source_file, future in zip(batch, futures):
        try:
            yield source_file, future.result()
        except BrokenProcessPool:
            yield source_file, parse_alone(source_file, work)


def parse_alone(source_file: SourceFile, work) -> Post | str:
    # A worker died (a crash in a C parser): each file of the pool's work is tried again in
    # a process of its own, so only the file that kills its parser is lost, as a problem.
    with worker_pool(1) as pool:
        try:
            return pool.submit(work, source_file).result()
        except BrokenProcessPool:
            return "the parser crashed on this file"

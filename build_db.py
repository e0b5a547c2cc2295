"""Build a SQLite database of news and opinion posts from Jekyll post files, and serve it.

    python build_db.py build data/          # data/ → posts.db
    python build_db.py check data/          # report problems, write nothing
    python build_db.py serve                # Datasette on http://127.0.0.1:8001/posts
    python build_db.py package site         # a Docker build context for the site in site/
    python build_db.py check-release --previous old.db   # fit to replace the published build?
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from typer.core import TyperArgument, TyperCommand, TyperGroup

from postsdb.build import Summary, build as run_build
from postsdb.scan import scan_sources
from postsdb.workers import parse_or_reason


class PlainHelp:
    """--help names each value as the README does (`SOURCE`, `FILE`), never by its Python
    type: typer prints a tag such as `<list[Path]>` or `<bool>` beside every parameter, and
    lets a metavar replace it only for an option that takes a value. It has no setting for
    the rest, so each parameter's type display is replaced as the command hands it out."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            param.display_type_rich = functools.partial(value_name, param)
        return params


def value_name(param, ctx=None) -> str | None:
    if isinstance(param, TyperArgument) or getattr(param, "is_flag", False):
        return None  # the name column already says it: SOURCE, --force
    return param.metavar or param.name.upper()


class PlainHelpGroup(PlainHelp, TyperGroup):
    pass


class PlainHelpCommand(PlainHelp, TyperCommand):
    pass


app = typer.Typer(
    cls=PlainHelpGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Turn a folder of Jekyll post files into one SQLite database, and serve it with Datasette.",
    epilog="Examples: `python build_db.py build data/` · `python build_db.py check data/` · "
    "`python build_db.py serve --db posts.db` (then open http://127.0.0.1:8001/posts)",
)
err = Console(stderr=True, highlight=False)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
out = Console(highlight=False)

SourcesArg = Annotated[
    Optional[list[Path]],
    typer.Argument(
        metavar="SOURCE",
        help="Folders (scanned recursively) or files. Post files end in .md, .markdown, .html, .htm "
        "or .txt; other files are skipped and counted. Default: data/",
        show_default=False,
    ),
]
DbOption = Annotated[Path, typer.Option("--db", metavar="FILE", help="The SQLite database to write.")]
ServedDbOption = Annotated[Path, typer.Option("--db", metavar="FILE", help="The SQLite database to serve.")]


@app.command(cls=PlainHelpCommand)
def build(
    sources: SourcesArg = None,
    db: DbOption = Path("posts.db"),
    force: Annotated[bool, typer.Option("--force", help="Re-parse every file, even unchanged ones.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on any problem file, and keep the old database.")
    ] = False,
    search: Annotated[
        bool, typer.Option("--search/--no-search", help="Build the Chinese full-text search index.")
    ] = True,
):
    """Build or update the database. Only files whose contents changed are parsed again;
    the new database replaces the old one in one atomic rename, so a failed or killed
    build leaves the old one as it was."""
    sources = sources or [Path("data")]
    check_sources(sources)
    existed = db.exists()
    with progress_bar() as bar:
        summary = run_build(sources, db, force=force, with_search=search, keep_if_problems=strict, progress=bar)
    print_problems(summary.problems)
    print_summary(summary, db, existed)
    if strict and summary.problems:
        kept = f"{db} was left unchanged" if existed else "no database was written"
        err.print(f"--strict: {len(summary.problems)} problem(s); {kept}.", markup=False)
        raise typer.Exit(1)


@app.command(cls=PlainHelpCommand)
def check(sources: SourcesArg = None):
    """Parse every post and print one line per problem (`path: reason`). Writes nothing.
    Exits 1 if there is any problem."""
    sources = sources or [Path("data")]
    check_sources(sources)
    scan = scan_sources(sources)
    problems = []
    for source_file in scan.files:
        reason = parse_or_reason(source_file)
        if isinstance(reason, str):
            problems.append((source_file.rel, reason))
    print_problems(problems)
    out.print(
        f"{len(scan.files)} post files checked, {len(problems)} problem(s), {scan.skipped} other files skipped."
    )
    if problems:
        raise typer.Exit(1)


@app.command(cls=PlainHelpCommand)
def serve(
    db: ServedDbOption = Path("posts.db"),
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8001,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Worker processes: 1 is `datasette serve`; more run under gunicorn (datasette-gunicorn). "
            "A process uses about one CPU, so one per CPU serves the most.",
        ),
    ] = 1,
):
    """Serve the database with Datasette and this project's metadata, plugins and settings."""
    from postsdb.serve import serve_database

    serve_database(db, host=host, port=port, workers=workers)


@app.command()
def package(
    folder: Annotated[Path, typer.Argument(help="The folder to write the build context into.", show_default=False)],
    db: Annotated[Path, typer.Option("--db", help="The database to publish.")] = Path("posts.db"),
    force: Annotated[bool, typer.Option("--force", help="Replace the folder if it is not empty.")] = False,
):
    """Write a self-contained Docker build context for the site into a folder.

    A Dockerfile (python slim, pinned dependencies, the same Datasette as `serve`,
    on $PORT, default 8080, one worker process per CPU), the database, its inspect file, the metadata, plugins,
    templates and the postsdb package. Deploy it with `docker build`, `fly deploy` or
    `gcloud run deploy --source`."""
    from postsdb.package import PackageError, package as write_package

    try:
        context = write_package(db, folder, force=force)
    except PackageError as error:
        err.print(f"Error: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(
        f"Wrote {folder}: {context.files} files, {context.size / 1e6:.1f} MB, "
        f"{len(context.requirements)} pinned packages. Try it: "
        f"docker build -t posts {folder} && docker run -p 8080:8080 posts",
        markup=False,
        soft_wrap=True,
    )


@app.command("check-release")
def check_release(
    db: Annotated[Path, typer.Option("--db", help="The new build.")] = Path("posts.db"),
    previous: Annotated[
        Optional[Path],
        typer.Option("--previous", help="The build that is published now; if missing, the new one is judged alone."),
    ] = None,
    max_drop: Annotated[
        float, typer.Option("--max-drop", min=0, max=1, help="The largest fall in articles allowed, as a fraction.")
    ] = 0.03,
):
    """Exit 1 if the build should not replace the published one.

    It should not when it fails SQLite's integrity check, has no articles, has more than
    --max-drop fewer articles than the previous build, or has a kind of problem the
    previous build did not have."""
    import sqlite3

    from postsdb.release import check_release as judge_release

    if not db.is_file():
        err.print(f"Error: no such database: {db}", markup=False, soft_wrap=True)
        raise typer.Exit(2)
    try:
        verdict = judge_release(db, previous, max_drop)
    except sqlite3.Error as error:
        err.print(f"Refused: cannot read a build: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    before = f"{verdict.previous.articles:,}" if verdict.previous else "no previous build"
    out.print(
        f"{verdict.current.articles:,} articles ({before}); "
        f"{sum(verdict.current.problem_kinds.values())} problem(s) of {len(verdict.current.problem_kinds)} kind(s)",
        markup=False,
    )
    for refusal in verdict.refusals:
        err.print(f"Refused: {printable(refusal)}", markup=False, soft_wrap=True)
    if not verdict.ok:
        raise typer.Exit(1)
    out.print("Fit to publish.")


def check_sources(sources: list[Path]) -> None:
    missing = [str(s) for s in sources if not s.exists()]
    if missing:
        err.print(f"Error: no such file or folder: {', '.join(missing)}")
        raise typer.Exit(2)


class progress_bar:
    """A rich progress bar on a terminal; nothing when output goes to a file or pipe."""

    def __enter__(self):
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
            transient=True,
        )
        self.progress.__enter__()
        return self

    def __call__(self, total: int):
        task = self.progress.add_task("Parsing posts", total=total)
        return lambda: self.progress.advance(task)

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)


def print_problems(problems) -> None:
    for path, reason in problems:
        # One line per problem, whatever the file name holds: no terminal escapes, no breaks.
        err.print(f"{printable(path)}: {printable(reason)}", markup=False, soft_wrap=True, highlight=False)


def printable(text: str) -> str:
    return CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def print_summary(summary: Summary, db: Path, existed: bool = True) -> None:
    if summary.wrote:
        outcome = f"wrote {db}"
    else:  # only --strict with problems writes no database where there was none
        outcome = f"left {db}" if existed else "no database written"
    out.print(
        f"{summary.added} added, {summary.changed} changed, {summary.unchanged} unchanged, "
        f"{summary.removed} removed; {len(summary.problems)} problem(s); "
        f"{summary.scanned} files scanned ({summary.skipped} skipped); "
        f"{summary.seconds:.2f} s; {outcome}",
        markup=False,
        soft_wrap=True,
    )


if __name__ == "__main__":
    sys.exit(app())

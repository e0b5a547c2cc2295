"""Serve posts.db with Datasette and this project's metadata, plugins, templates and settings.

`datasette_args()` is the one place the command line is put together: `serve_database`
runs it, the tests and the benchmark run it, the README shows it, and `container_command`
turns it into the CMD of the image that `build_db.py package` writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

# Only ever 127.0.0.1: never through a proxy from the environment.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

PROJECT = Path(__file__).resolve().parent.parent
METADATA = PROJECT / "metadata.yml"
PLUGINS = PROJECT / "plugins"
TEMPLATES = PROJECT / "templates"
# What Datasette reads besides the database, as (flag, name in the project folder).
# `build_db.py package` copies exactly these into a site's build context.
CONFIGURATION = (("--metadata", METADATA.name), ("--plugins-dir", PLUGINS.name), ("--template-dir", TEMPLATES.name))

# In a container the platform chooses the port: Cloud Run sets $PORT, Fly and plain
# `docker run` use the default. A shell word, expanded when the container starts.
CONTAINER_PORT = 8080
PORT_FROM_ENV = f'"${{PORT:-{CONTAINER_PORT}}}"'
# One worker process per CPU the machine has (`nproc`), unless $WEB_CONCURRENCY says otherwise
# (set it under a CPU quota such as `docker run --cpus`, which nproc does not see). A process
# spends about one core at most (the GIL), so a second CPU needs a second process:
# bench/serve.py measured the mix on 2 CPUs at 81 requests/s with one, 161 with two.
# One is plain `datasette serve`; more, `datasette gunicorn --workers N`. Shell words.
CHOOSE_COMMAND = (
    'workers="${WEB_CONCURRENCY:-$(nproc)}"; '
    'if [ "$workers" -gt 1 ] 2>/dev/null; then set -- gunicorn --workers "$workers"; else set -- serve; fi; '
)
COMMAND_FROM_SHELL = '"$@"'

# Datasette 0.65 reads settings from --setting flags (or a config dir), never metadata.yml.
SETTINGS = {
    # Suggested facets run a query per column on every table page: about 10x the work.
    "suggest_facets": False,
    # The costliest honest query is a LIKE scan of every body: ~0.75 s on the x30 corpus
    # (4,530 articles; the full archive has ~5,700). 2 s lets it finish with room to spare;
    # canned queries take under 0.1 s. Nothing can hold one of the 3 SQL threads for longer.
    "sql_time_limit_ms": 2000,
    # A JSON page is serialized on the event loop, stalling every other reader meanwhile.
    # On the x30 corpus 1,000 rows of article_bodies (Datasette's default cap) are 42 MB and
    # ~0.25 s; 500 halves that, and the articles table still comes in pages of 500. Bulk
    # users download /posts.db (or stream CSV).
    "max_returned_rows": 500,
    # On the x30 corpus the faceted articles page is 89 KB at 50 rows and 146 KB at 100,
    # too close to the 150 KB budget; 50 articles are also a screenful or two to read.
    "default_page_size": 50,
    # Datasette's default, said out loud: /posts.db needs it (and immutable mode).
    "allow_download": True,
    # The database never changes while it is served (-i), so pages may be cached for a while.
    "default_cache_ttl": 300,
}


def setting_flags(settings: dict = SETTINGS) -> list[str]:
    flags = []
    for name, value in settings.items():
        text = ("on" if value else "off") if isinstance(value, bool) else str(value)
        flags += ["--setting", name, text]
    return flags


def configuration() -> list[tuple[str, str]]:
    """The configuration flags and the names they take, for what the project has."""
    return [(flag, name) for flag, name in CONFIGURATION if (PROJECT / name).exists()]


def datasette_args(
    db: Path,
    inspect_file: Path,
    host: str = "127.0.0.1",
    port: int | str = 8001,
    root: Path = PROJECT,
    workers: int = 1,
) -> list[str]:
    """The arguments after `datasette`: serve `db` immutable with the project's configuration,
    read from `root`: the project, or a folder that holds copies of it (`Path(".")` gives
    paths relative to the folder the command runs in). `port` may be PORT_FROM_ENV.

    One worker is `datasette serve`. More are `datasette gunicorn --workers N`
    (datasette-gunicorn: the same options, one Datasette made before gunicorn forks its
    uvicorn workers, so they share its secret; plugins/gunicorn_settings.py sets the rest)."""
    return serve_command(workers) + serve_options(db, inspect_file, host, port, root)


def serve_command(workers: int) -> list[str]:
    return ["serve"] if workers == 1 else ["gunicorn", "--workers", str(workers)]


def serve_options(db: Path, inspect_file: Path, host: str, port: int | str, root: Path) -> list[str]:
    """What `datasette serve` and `datasette gunicorn` are both given."""
    args = ["-i", str(db), "--inspect-file", str(inspect_file)]
    for flag, name in configuration():
        args += [flag, str(root / name)]
    return args + setting_flags() + ["--cors", "--host", host, "--port", str(port)]


def plain_commands(db: str = "posts.db", inspect_file: str = "inspect.json", port: int = 8001) -> str:
    """What `build_db.py serve` amounts to, as plain `datasette` commands run from the project
    folder: for the README, which shows exactly this text."""
    args = datasette_args(Path(db), Path(inspect_file), "127.0.0.1", port, root=Path("."))
    return f"datasette inspect {db} --inspect-file {inspect_file}\ndatasette {' '.join(args)}"


def container_command(db: str = "posts.db", inspect_file: str = "inspect.json") -> list[str]:
    """The image's CMD: what `build_db.py serve --workers N` runs, N one per CPU, from the
    build context's copies of the configuration, on every interface and on $PORT. `exec`
    makes Datasette (or gunicorn's master) the container's main process, so the platform's
    stop signal reaches it."""
    options = serve_options(Path(db), Path(inspect_file), "0.0.0.0", PORT_FROM_ENV, root=Path("."))
    words = [arg if arg == PORT_FROM_ENV else shlex.quote(arg) for arg in options]
    return ["sh", "-c", CHOOSE_COMMAND + "exec datasette " + " ".join([COMMAND_FROM_SHELL, *words])]


def inspect_path(db: Path) -> Path:
    """Where the inspect file of `db` goes: a temp folder, never the project or the data."""
    key = hashlib.sha256(str(db.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "posts-db-inspect" / f"{db.stem}-{key}.json"


def write_inspect_file(db: Path, target: Path | None = None, cwd: Path | None = None) -> Path:
    """Run `datasette inspect`: the file's hash and every table's row count, so an immutable
    database is never counted again while it is served. The file records `db` as given: a
    relative `db` (with `cwd`) keeps absolute paths out of it."""
    target = (target or inspect_path(db)).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    subprocess.run(
        [sys.executable, "-m", "datasette", "inspect", str(db), "--inspect-file", str(partial)], check=True, cwd=cwd
    )
    os.replace(partial, target)
    return target


def serve_database(db: Path, host: str = "127.0.0.1", port: int = 8001, workers: int = 1) -> None:
    """Replace this process with Datasette serving `db` (so signals reach Datasette itself)."""
    if not db.is_file():
        raise SystemExit(f"Error: no such database: {db} (build it first: python build_db.py build)")
    try:
        inspect_file = write_inspect_file(db)
    except subprocess.CalledProcessError:
        raise SystemExit(f"Error: `datasette inspect` failed on {db}: is it a SQLite database?") from None
    args = datasette_args(db, inspect_file, host, port, workers=workers)
    if db.stem != "posts":
        print(f"Note: served at /{db.stem}; the article page template expects posts.db (/posts).", file=sys.stderr)
    each = f" by {workers} worker processes" if workers > 1 else ""
    print(f"Serving {db} at http://{host}:{port}/{db.stem}{each}", file=sys.stderr)
    # The plugins import postsdb: make it importable whatever the working directory.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "datasette", *args], env)


# --- a served site for tests and the benchmark ---------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(
    db: Path, host: str = "127.0.0.1", port: int | None = None, timeout: float = 30, workers: int = 1
) -> Iterator[str]:
    """`build_db.py serve` in a child process, run from the database's folder; yields its
    base URL once it answers, and stops it (that process, which stops its workers) when the
    block ends."""
    db = db.resolve()
    port = port or free_port(host)
    base = f"http://{host}:{port}"
    command = [sys.executable, str(PROJECT / "build_db.py"), "serve", "--db", str(db), "--host", host, "--port", str(port)]
    command += ["--workers", str(workers)] if workers != 1 else []
    with supervised(command, f"{base}/-/versions.json", timeout, cwd=db.parent):
        yield base


@contextlib.contextmanager
def supervised(command: list[str], url: str, timeout: float, cwd: Path, env: dict | None = None, stop_wait: float = 10) -> Iterator[subprocess.Popen]:
    """A server started by `command`, yielded once `url` answers (its output kept for the
    error if it never does); terminated, or else killed, when the block ends. It starts in a
    process group of its own, and the whole group is stopped: a killed gunicorn master
    would leave its workers serving."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
        try:
            wait_until_up(process, url, timeout, log)
            yield process
        finally:
            stop_group(process, stop_wait)


def stop_group(process: subprocess.Popen, wait: float) -> None:
    """SIGTERM to the process's group (its own, from start_new_session), then SIGKILL to
    what is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the workers, if the master left any
    process.wait(10)


def wait_until_up(process: subprocess.Popen, url: str, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with DIRECT.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    log.seek(0)
    output = log.read().decode("utf-8", "replace")[-3000:]
    raise RuntimeError(f"datasette did not come up at {url} (exit code {process.poll()}):\n{output}")

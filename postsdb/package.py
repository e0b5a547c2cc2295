"""A self-contained Docker build context for the site: `build_db.py package DIR`.

The context holds everything the site needs and nothing that points outside it:

    Dockerfile        FROM an official Python slim image; CMD is `container_command()`
    requirements.txt  every runtime dependency and theirs, at exact versions
    pyproject.toml    installs `postsdb`, which the plugins import
    postsdb/          the project's package
    metadata.yml, plugins/, templates/   the configuration `build_db.py serve` uses
    posts.db          the database, served immutable, downloadable as /posts.db
    inspect.json      its row counts, computed here so the server never counts them
    fly.toml          the HTTP service on Fly Machines (other hosts ignore it)

It is written into a temporary folder beside DIR and renamed into place, so DIR is
either the old context or the whole new one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from postsdb.serve import CONTAINER_PORT, PROJECT, configuration, container_command, write_inspect_file

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYTHON_VERSION = "3.11"
BASE_IMAGE = f"python:{PYTHON_VERSION}-slim"
# Markers are evaluated for the image, not for the machine that packages it.
IMAGE_ENVIRONMENT = {
    **default_environment(),
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.0",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
DB_NAME = "posts.db"  # the article page's template expects the database at /posts
INSPECT_NAME = "inspect.json"
PACKAGE = "postsdb"
CONSTRAINTS = PROJECT / "constraints.txt"
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class PackageError(Exception):
    """A context cannot be written; the message says why."""


@dataclass
class Context:
    path: Path
    files: int
    size: int
    requirements: list[str]


def package(db: Path, target: Path, force: bool = False) -> Context:
    """Write the build context for `db` into `target`; refuse a non-empty `target` unless `force`."""
    check_database(db)
    check_target(target, force)
    requirements = pinned_requirements()
    target.absolute().parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.packaging-", dir=target.absolute().parent))
    try:
        write_context(staging, db, requirements)
        swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = [f for f in target.rglob("*") if f.is_file()]
    return Context(target, len(files), sum(f.stat().st_size for f in files), requirements)


def check_database(db: Path) -> None:
    if not db.is_file():
        raise PackageError(f"no such database: {db} (build it first: python build_db.py build)")
    try:
        with contextlib.closing(sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)) as conn:
            conn.execute("select count(*) from articles").fetchone()
    except sqlite3.Error as error:
        raise PackageError(f"{db} is not a database built by build_db.py ({error})") from None


def check_target(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise PackageError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise PackageError(f"{target} is not empty: choose another folder, or pass --force to replace it")


def write_context(folder: Path, db: Path, requirements: list[str]) -> None:
    shutil.copyfile(db, folder / DB_NAME)
    # Relative to the context, so the inspect file names no path outside it.
    write_inspect_file(Path(DB_NAME), folder / INSPECT_NAME, cwd=folder)
    for _flag, name in configuration():
        copy_item(PROJECT / name, folder / name)
    copy_item(PROJECT / PACKAGE, folder / PACKAGE)
    (folder / "requirements.txt").write_text(requirements_text(requirements), encoding="utf-8")
    (folder / "pyproject.toml").write_text(pyproject_text(), encoding="utf-8")
    (folder / "Dockerfile").write_text(dockerfile_text(), encoding="utf-8")
    (folder / "fly.toml").write_text(FLY_TOML, encoding="utf-8")


def copy_item(source: Path, target: Path) -> None:
    """Copy a file or folder; symlinks are copied as what they point to, so none is left
    pointing outside the context."""
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False, ignore=SKIP)
    else:
        shutil.copyfile(source, target)


def swap_into_place(staging: Path, target: Path) -> None:
    """Rename the finished context to `target`; an old `target` is renamed aside first and
    removed only once the new one is in place (and put back if it cannot be)."""
    os.chmod(staging, 0o755)  # mkdtemp makes it 0700
    if target.is_dir() and any(target.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.absolute().parent))
        os.replace(target, old / target.name)
        try:
            os.replace(staging, target)
        except OSError:
            os.replace(old / target.name, target)
            old.rmdir()
            raise
        shutil.rmtree(old)
    else:
        os.replace(staging, target)  # an empty folder is replaced in the same rename


# --- pinned requirements ----------------------------------------------------------


def project_metadata() -> dict:
    with open(PROJECT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]


def pinned_requirements() -> list[str]:
    """`name==version` for every runtime dependency of the project and all of theirs, as
    the image would install them. Versions come from constraints.txt when the project has
    one, else from what is installed here (which the tests have just run against)."""
    pins = constraint_pins()
    return [f"{name}=={pins.get(canonicalize_name(name)) or version}" for name, version in dependency_closure()]


# The installer's own tools. Datasette lists pip and setuptools (unversioned) for its
# `datasette install` command; the base image has both, and `pip check` in the Dockerfile
# fails the build if it ever does not. Pinning them here pinned whatever the virtualenv
# that ran `package` happened to have.
INSTALLER_TOOLS = frozenset({"pip", "setuptools", "wheel"})


def dependency_closure() -> list[tuple[str, str]]:
    """(name, installed version) of each distribution the image needs, sorted by name: the
    runtime's packages, not the installer's (INSTALLER_TOOLS)."""
    found: dict[str, tuple[str, str]] = {}
    done: set[tuple[str, str]] = set()
    queue = [Requirement(text) for text in project_metadata().get("dependencies", [])]
    queue = [req for req in queue if applies(req, "")]
    while queue:
        req = queue.pop()
        key = canonicalize_name(req.name)
        if key in INSTALLER_TOOLS:
            continue
        dist = installed(req)
        found[key] = (dist.metadata["Name"], dist.version)
        for extra in {""} | set(req.extras):  # uvicorn[standard] needs what `standard` adds
            if (key, extra) in done:
                continue
            done.add((key, extra))
            queue += [sub for sub in map(Requirement, dist.requires or []) if applies(sub, extra)]
    return sorted(found.values(), key=lambda item: canonicalize_name(item[0]))


def applies(req: Requirement, extra: str) -> bool:
    return req.marker is None or req.marker.evaluate({**IMAGE_ENVIRONMENT, "extra": extra})


def installed(req: Requirement) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(req.name)
    except importlib.metadata.PackageNotFoundError:
        raise PackageError(
            f"{req.name} is needed in the image but is not installed here, so its version is unknown: "
            f'install the project first (pip install -e ".")'
        ) from None


def constraint_pins() -> dict[str, str]:
    """Exact versions from constraints.txt (`name==version` lines), by canonical name."""
    if not CONSTRAINTS.is_file():
        return {}
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator == "==":
            pins[canonicalize_name(req.name)] = specs[0].version
    return pins


# --- the context's own files ------------------------------------------------------------


def requirements_text(requirements: list[str]) -> str:
    source = "constraints.txt" if CONSTRAINTS.is_file() else "the versions installed when it was packaged"
    header = (
        "# Every package the site needs, at exact versions (from "
        + source
        + "):\n# the project's runtime dependencies and all of theirs. Written by `build_db.py package`.\n"
    )
    return header + "".join(f"{line}\n" for line in requirements)


def pyproject_text() -> str:
    project = project_metadata()
    return f'''# Installs `postsdb`, the project's package, which the plugins import. Its dependencies
# are pinned in requirements.txt and installed before it. Written by `build_db.py package`.
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = {json.dumps(project["name"])}
version = {json.dumps(project["version"])}
requires-python = {json.dumps(project.get("requires-python", ">=3.10"))}

[tool.setuptools]
packages = [{json.dumps(PACKAGE)}]
'''


def copy_line(name: str) -> str:
    # COPY puts a folder's contents, not the folder, at the destination: one line each.
    return f"COPY {name}/ ./{name}/" if (PROJECT / name).is_dir() else f"COPY {name} ./"


def dockerfile_text() -> str:
    configuration_lines = "\n".join(copy_line(name) for _flag, name in configuration())
    return f"""\
# The site: Datasette serving {DB_NAME} as `build_db.py serve` does. Written by
# `python build_db.py package`; build it with `docker build -t posts .` in this folder.
FROM {BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /app

# Dependencies first, each at its pinned version and nothing else; `pip check` fails the
# build if the pins are not a complete, consistent set.
COPY requirements.txt ./
RUN pip install --no-deps -r requirements.txt && pip check

# The project's package, which the plugins import.
COPY pyproject.toml ./
{copy_line(PACKAGE)}
RUN pip install --no-deps .

# The configuration, then the database (the layer that changes with every build).
{configuration_lines}
COPY {INSPECT_NAME} {DB_NAME} ./

# Datasette only reads: the database is immutable and the files belong to root.
USER nobody
EXPOSE {CONTAINER_PORT}
CMD {json.dumps(container_command(DB_NAME, INSPECT_NAME), ensure_ascii=False)}
"""


# [http_service.concurrency], from bench/serve.py's load curve (the distinct mix, uncached,
# on the sample x30, one process; the README has the curve). SOFT_LIMIT is the knee: from 2
# connections on, requests/s stayed within 10% of the best (79-82) while p99 went from 190
# ms at 2 to 690 ms at 16, so past it a request only waits longer and Fly's proxy should
# prefer another machine. HARD_LIMIT is the most connections whose p99 stayed under 1 s;
# past it the proxy holds requests back instead of piling them onto this machine.
SOFT_LIMIT = 2
HARD_LIMIT = 16

FLY_TOML = f"""\
# Fly Machines: `fly launch --no-deploy` in this folder creates the app and adds its name
# here; after that, `fly deploy` (or `fly deploy --app NAME` from a fresh package).
# Written by `build_db.py package`.

[http_service]
  internal_port = {CONTAINER_PORT}
  force_https = true
  auto_stop_machines = "stop"
  auto_start_machines = true
  min_machines_running = 1

  [http_service.concurrency]
    type = "requests"
    soft_limit = {SOFT_LIMIT}
    hard_limit = {HARD_LIMIT}

  [[http_service.checks]]
    grace_period = "10s"
    interval = "30s"
    method = "GET"
    path = "/-/versions.json"
    timeout = "5s"

# SQLite may take up to 768 MB for queries (plugins/sql_limits.py), plus the response cache.
[[vm]]
  memory = "1gb"
  cpu_kind = "shared"
  cpus = 1
"""

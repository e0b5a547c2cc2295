"""`build_db.py package DIR`: a Docker build context that serves the site on its own.

Docker is not needed to test it: the context is copied away from the checkout, its
Dockerfile's RUN steps are run with a fresh virtualenv's pip (the same pinned packages from
the package index, and `pip install .` of the copied package), and its CMD is run in the
copied context with PORT set, where nothing of the checkout is importable. When `docker
info` works, the image is also built and run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
import uuid
import venv
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

import build_db
from conftest import SEED_URL
from postsdb.package import BASE_IMAGE, DB_NAME, INSPECT_NAME, constraint_pins, dependency_closure
from postsdb.parse import article_id
from postsdb.serve import CONTAINER_PORT, PROJECT, container_command, free_port, wait_until_up

runner = CliRunner()
SEED_TITLE = "腾讯捐五百亿元后立即增用户收费作补偿"
SEARCH = "/posts/articles.json?_search=%E9%A8%B0%E8%A8%8A&_shape=array"  # 騰訊, Traditional
EXPECTED = {"Dockerfile", "requirements.txt", "pyproject.toml", "fly.toml", DB_NAME, INSPECT_NAME, "metadata.yml"}


def package(folder: Path, db: Path, *extra: str):
    return runner.invoke(build_db.app, ["package", str(folder), "--db", str(db), *extra])


@pytest.fixture(scope="module")
def context(data_db, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("package") / "site"
    result = package(folder, data_db)
    assert result.exit_code == 0, result.output
    return folder


def dockerfile_instructions(context: Path, keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (context / "Dockerfile").read_text(encoding="utf-8"))
    return [line[len(keyword) + 1 :].strip() for line in text.splitlines() if line.startswith(f"{keyword} ")]


def context_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


# --- what the context holds -----------------------------------------------------------


def test_context_holds_the_site_and_nothing_that_points_outside_it(context, data_db):
    names = {p.name for p in context.iterdir()}
    assert EXPECTED | {"postsdb", "plugins", "templates"} == names
    assert (context / DB_NAME).read_bytes() == data_db.read_bytes()
    for folder in ("plugins", "templates", "postsdb"):
        copied = {p.name for p in (context / folder).iterdir()}
        assert copied == {p.name for p in (PROJECT / folder).iterdir() if p.name != "__pycache__"}
    assert not [p for p in context.rglob("*") if p.is_symlink()]
    outside = [str(PROJECT), str(data_db.parent), str(context), tempfile.gettempdir()]
    for path in context.rglob("*"):
        if path.is_file() and path.name != DB_NAME:
            text = path.read_text(encoding="utf-8")
            assert not [o for o in outside if o in text], path
    assert json.loads((context / INSPECT_NAME).read_text())["posts"]["file"] == DB_NAME


def test_dockerfile_installs_pinned_packages_and_runs_the_serve_command(context):
    assert dockerfile_instructions(context, "FROM") == [BASE_IMAGE] and BASE_IMAGE == "python:3.11-slim"
    runs = dockerfile_instructions(context, "RUN")
    assert runs == ["pip install --no-deps -r requirements.txt && pip check", "pip install --no-deps ."]
    for copy in dockerfile_instructions(context, "COPY"):
        *sources, _target = copy.split()
        for source in sources:
            assert not source.startswith("/") and ".." not in source and (context / source).exists(), source
    cmd = json.loads(dockerfile_instructions(context, "CMD")[0])
    assert cmd == container_command(DB_NAME, INSPECT_NAME)
    assert cmd[2].endswith('--host 0.0.0.0 --port "${PORT:-8080}"') and "--cors" in cmd[2]
    assert dockerfile_instructions(context, "EXPOSE") == [str(CONTAINER_PORT)]
    fly = tomllib.loads((context / "fly.toml").read_text())
    assert fly["http_service"]["internal_port"] == CONTAINER_PORT
    concurrency = fly["http_service"]["concurrency"]
    assert concurrency["type"] == "requests" and 0 < concurrency["soft_limit"] < concurrency["hard_limit"]


def test_requirements_pin_every_runtime_dependency_exactly(context):
    lines = [l for l in (context / "requirements.txt").read_text().splitlines() if l and not l.startswith("#")]
    pins = dict(line.split("==") for line in lines)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line) for line in lines), lines
    constrained = constraint_pins()
    expected = {name: constrained.get(canonicalize_name(name), version) for name, version in dependency_closure()}
    assert pins == expected
    for needed in ("datasette", "datasette-block-robots", "datasette-dashboards", "datasette-atom", "OpenCC", "nh3"):
        assert needed in pins, needed
    assert pins["datasette"].startswith("0.65.") and "pytest" not in pins and "posts-db" not in pins
    assert not {"pip", "setuptools", "wheel"} & {canonicalize_name(name) for name in pins}  # the installer's, not the site's
    pyproject = (context / "pyproject.toml").read_text()
    assert 'packages = ["postsdb"]' in pyproject and "\ndependencies" not in pyproject


def test_versions_come_from_constraints_txt_when_the_project_has_one(tmp_path, monkeypatch):
    import postsdb.package as package_module

    constraints = tmp_path / "constraints.txt"
    constraints.write_text("# pins\nDatasette==0.65.99  # a comment\nPyYAML==6.0.99\npytest==9.9.9\n\n")
    monkeypatch.setattr(package_module, "CONSTRAINTS", constraints)
    pins = dict(line.split("==") for line in package_module.pinned_requirements())
    assert pins["datasette"] == "0.65.99" and pins["PyYAML"] == "6.0.99" and "pytest" not in pins
    installed = dict(dependency_closure())
    assert pins["nh3"] == installed["nh3"]  # not in the constraints: as installed
    assert "(from constraints.txt)" in package_module.requirements_text(["datasette==0.65.99"])


# --- writing it -------------------------------------------------------------------------


def test_a_folder_that_is_not_empty_is_refused_unless_forced(data_db, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    result = package(folder, data_db)
    assert result.exit_code == 2 and "is not empty" in result.output and "--force" in result.output
    assert [p.name for p in folder.iterdir()] == ["mine.txt"]
    forced = package(folder, data_db, "--force")
    assert forced.exit_code == 0, forced.output
    assert not (folder / "mine.txt").exists() and (folder / "Dockerfile").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no staging or old folder left behind
    (tmp_path / "empty").mkdir()
    assert package(tmp_path / "empty", data_db).exit_code == 0


def test_a_missing_or_foreign_database_is_refused(tmp_path):
    result = package(tmp_path / "site", tmp_path / "missing.db")
    assert result.exit_code == 2 and "no such database" in result.output
    (tmp_path / "other.db").write_bytes(b"not a database at all" * 100)
    result = package(tmp_path / "site", tmp_path / "other.db")
    assert result.exit_code == 2 and "not a database built by build_db.py" in result.output
    assert not (tmp_path / "site").exists()


# --- running it -------------------------------------------------------------------------


def clean_environment(**extra: str) -> dict:
    """This environment without anything that would make the checkout importable."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    return {**env, **extra}


def run_dockerfile_steps(context: Path, venv_dir: Path) -> None:
    """The RUN steps as Docker would run them in the image, with the virtualenv's pip first
    on PATH. The ENV lines are left out: they only turn pip's cache off, which is the slow part."""
    env = clean_environment(PATH=f"{venv_dir / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv_dir))
    for step in dockerfile_instructions(context, "RUN"):
        result = subprocess.run(["sh", "-c", step], cwd=context, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"RUN {step}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def check_site(base: str, context: Path) -> None:
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        found = client.get(SEARCH)
        assert found.status_code == 200, found.text[:500]
        assert SEED_TITLE in [row["title"] for row in found.json()]
        page = client.get(f"/posts/articles/{article_id(SEED_URL)}")
        assert page.status_code == 200
        body = page.text[page.text.index('<div class="article-body">') :]
        assert "<p>" in body[: body.index("</article>")]
        download = client.get("/posts.db")
        assert download.status_code == 200 and download.content == (context / DB_NAME).read_bytes()
        robots = client.get("/robots.txt")
        assert robots.status_code == 200 and "Disallow: /*?" in robots.text
        plugins = {p["name"] for p in client.get("/-/plugins.json").json()}
        assert {"article_page.py", "cjk_search.py", "html_cells.py", "datasette-block-robots"} <= plugins


def test_the_context_serves_the_site_from_a_fresh_virtualenv(data_db, tmp_path, capsys):
    started = time.monotonic()
    built = tmp_path / "built"
    assert package(built, data_db).exit_code == 0
    context = tmp_path / "elsewhere" / "site"  # away from the checkout and from the original context
    shutil.copytree(built, context)
    shutil.rmtree(built)
    venv_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    run_dockerfile_steps(context, venv_dir)
    python = venv_dir / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import postsdb; print(postsdb.__file__)"],
        cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(venv_dir), where.stdout  # installed, not the checkout

    port = free_port()
    command = json.loads(dockerfile_instructions(context, "CMD")[0])
    env = clean_environment(PORT=str(port), PATH=f"{venv_dir / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=context, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(process, f"http://127.0.0.1:{port}/-/versions.json", 60, log)
            serving = time.monotonic() - started
            check_site(f"http://127.0.0.1:{port}", context)
        finally:
            process.terminate()
            process.wait(15)
    with capsys.disabled():
        print(
            f"\n[package] context {context_size(context) / 1e6:.1f} MB "
            f"(posts.db {(context / DB_NAME).stat().st_size / 1e6:.1f} MB); "
            f"package → serving site in a fresh virtualenv: {serving:.0f} s"
        )


def docker_works() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


@pytest.mark.skipif(not docker_works(), reason="docker is not usable here")
def test_docker_builds_and_runs_the_context(context):
    tag = f"posts-db-test:{uuid.uuid4().hex[:12]}"
    subprocess.run(["docker", "build", "-t", tag, str(context)], check=True, timeout=1800)
    port = free_port()
    container = None
    try:
        run = ["docker", "run", "-d", "-p", f"127.0.0.1:{port}:{CONTAINER_PORT}", tag]
        container = subprocess.run(run, check=True, capture_output=True, text=True).stdout.strip()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/-/versions.json", trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, subprocess.run(["docker", "logs", container], capture_output=True).stderr
            time.sleep(0.5)
        check_site(f"http://127.0.0.1:{port}", context)
    finally:
        if container:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)

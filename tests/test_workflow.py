"""The daily publishing workflow: actionlint finds nothing wrong with it, and it does what
the README says, in that order, with commands this project has."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

import build_db
from postsdb.serve import PROJECT

WORKFLOW = PROJECT / ".github" / "workflows" / "publish.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps(workflow: dict) -> list[dict]:
    return workflow["jobs"]["publish"]["steps"]


def step_index(workflow: dict, needle: str) -> int:
    found = [i for i, step in enumerate(steps(workflow)) if needle in step.get("run", "") + step.get("uses", "")]
    assert len(found) == 1, (needle, found)
    return found[0]


@pytest.mark.skipif(shutil.which("actionlint") is None, reason="actionlint is not installed (the test extra has it)")
def test_actionlint_finds_nothing():
    result = subprocess.run(["actionlint", str(WORKFLOW)], capture_output=True, text=True, timeout=120, cwd=PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_runs_daily_and_by_hand(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    (cron,) = [entry["cron"] for entry in triggers["schedule"]]
    minute, hour, *every = cron.split()
    assert every == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()


def test_it_builds_tests_checks_packages_deploys_then_saves_in_that_order(workflow):
    archive = [i for i, s in enumerate(steps(workflow)) if s.get("with", {}).get("repository") == "NodeBE4/oped2"]
    assert len(archive) == 1 and steps(workflow)[archive[0]]["with"]["path"] == "oped2"
    order = [
        "actions/cache/restore",
        'pip install -c constraints.txt -e ".[test]"',
        "python build_db.py build oped2/_posts --db posts.db",
        "python -m pytest",
        "python build_db.py check-release --previous previous/posts.db --db posts.db",
        "python build_db.py package site",
        "superfly/flyctl-actions/setup-flyctl",
        "flyctl deploy --remote-only",
        "actions/cache/save",
    ]
    positions = archive + [step_index(workflow, needle) for needle in order]
    assert positions == sorted(positions)
    deploy = steps(workflow)[step_index(workflow, "flyctl deploy")]
    assert deploy["env"]["FLY_API_TOKEN"] == "${{ secrets.FLY_API_TOKEN }}" and deploy["working-directory"] == "site"


def test_the_previous_build_is_restored_and_saved_under_a_new_key_each_run(workflow):
    restore = steps(workflow)[step_index(workflow, "actions/cache/restore")]["with"]
    save = steps(workflow)[step_index(workflow, "actions/cache/save")]["with"]
    assert restore["path"] == save["path"] == "previous/posts.db"
    assert restore["key"] == save["key"] and "github.run_id" in save["key"]
    assert save["key"].startswith(restore["restore-keys"])


def test_every_build_db_command_it_runs_exists():
    commands = {command.name or command.callback.__name__ for command in build_db.app.registered_commands}
    used = re.findall(r"python build_db\.py ([a-z-]+)", WORKFLOW.read_text(encoding="utf-8"))
    assert set(used) == {"build", "check-release", "package"} and set(used) <= commands


def test_the_browser_tests_have_a_chromium_and_a_cjk_font_before_the_tests_run(workflow):
    # Without `chromium` on the PATH the browser tests skip (conftest.py): on the hosted
    # runner they must run, since nothing else runs them before a deploy.
    install = step_index(workflow, "playwright install --with-deps chromium")
    script = steps(workflow)[install]["run"]
    assert "fonts-noto-cjk" in script and "/usr/local/bin/chromium" in script
    assert install < step_index(workflow, "python -m pytest")

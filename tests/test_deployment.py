"""The deployment files work as shipped: checked without pulling an image or running an engine."""

from __future__ import annotations

import posixpath
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The environment docs/operations.md tells a newcomer to export before `docker compose up`.
DOCUMENTED_ENV = {
    "JWT_SECRET_KEY": "j" * 48,
    "EMAIL_VERIFY_SECRET": "e" * 48,
    "PASSWORD_RESET_SECRET": "p" * 48,
}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


def docker_compose() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on this machine")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no output"])[0][:200]
        pytest.skip(f"the docker CLI has no compose plugin ({reason}); no Docker engine needed")
    return [docker, "compose"]


def test_compose_config_with_the_documented_environment(tmp_path: Path) -> None:
    command = docker_compose()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **DOCUMENTED_ENV}
    result = subprocess.run(
        [*command, "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_needs_no_env_file_and_names_missing_secrets() -> None:
    services = compose()["services"]
    api = services["api"]
    assert api["env_file"] == [{"path": ".env", "required": False}]
    required = set(re.findall(r"\$\{([A-Z_]+):\?", (ROOT / "compose.yaml").read_text()))
    assert required == set(DOCUMENTED_ENV)
    operations = (ROOT / "docs" / "operations.md").read_text()
    for name in required:
        assert name in operations


def test_every_image_is_tagged() -> None:
    for name, service in compose()["services"].items():
        image = service["image"]
        _, _, tag = image.rpartition("/")[2].partition(":")
        assert tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} floats"


def test_start_up_waits_for_what_it_needs() -> None:
    services = compose()["services"]
    assert "healthcheck" in services["minio"]
    assert services["minio-bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        needs = {key: value["condition"] for key, value in services[name]["depends_on"].items()}
        assert needs["postgres"] == needs["redis"] == needs["minio"] == "service_healthy"
        assert needs["migrate"] == needs["minio-bucket"] == "service_completed_successfully"


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", "var/", ".venv", ".git"):
        assert entry in ignored


def final_stage(text: str) -> list[tuple[str, str]]:
    """The instructions of the last ``FROM`` stage as ``(INSTRUCTION, arguments)``."""
    joined = re.sub(r"\\\n", " ", text)
    instructions = [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in (raw.strip() for raw in joined.splitlines())
        if line and not line.startswith("#")
    ]
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def owned_paths(command: str, user: str) -> set[tuple[str, bool]]:
    """Paths a RUN command gives to ``user``: ``(path, recursive)``."""
    owned: set[tuple[str, bool]] = set()
    for part in re.split(r"&&|;", command):
        words = shlex.split(part)
        if not words:
            continue
        if words[0] == "install" and "-d" in words:
            options = {"-o", "-g", "-m"}
            owner = words[words.index("-o") + 1] if "-o" in words else None
            paths = [
                w
                for i, w in enumerate(words[1:], 1)
                if not w.startswith("-") and words[i - 1] not in options
            ]
            if owner == user:
                owned.update((path, False) for path in paths)
        if words[0] == "chown":
            recursive = "-R" in words
            rest = [w for w in words[1:] if not w.startswith("-")]
            if rest and rest[0].split(":")[0] == user:
                owned.update((path, recursive) for path in rest[1:])
    return owned


def test_the_image_user_can_write_its_storage_path() -> None:
    stage = final_stage((ROOT / "Containerfile").read_text())
    env: dict[str, str] = {}
    workdir, user, owned = "/", "root", set()
    for name, arguments in stage:
        if name == "WORKDIR":
            workdir = posixpath.join(workdir, arguments)
        elif name == "ENV":
            env.update(dict(word.split("=", 1) for word in shlex.split(arguments)))
        elif name == "USER":
            user = arguments.split(":")[0]
        elif name == "RUN" and user == "root":
            owned |= owned_paths(arguments, "orbsurv")
    assert user == "orbsurv", "the image must not run as root"
    var_dir = posixpath.join(workdir, env.get("VAR_DIR", "./var"))
    storage = posixpath.normpath(posixpath.join(var_dir, env.get("UPLOAD_ROOT", "uploads")))
    assert any(
        storage == path or (recursive and storage.startswith(path.rstrip("/") + "/"))
        for path, recursive in owned
    ), f"{storage} is not owned by {user}: {owned}"
    metrics = env.get("PROMETHEUS_MULTIPROC_DIR")
    assert metrics is not None
    assert (metrics, False) in owned or (metrics, True) in owned


def test_pre_commit_runs_the_suites_checks_offline() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert {repo["repo"] for repo in config["repos"]} == {"local"}
    assert set(hooks) == {"ruff", "ruff-format", "mypy"}
    for hook in hooks.values():
        assert hook["language"] == "system"
        assert hook["entry"].startswith("uv run --frozen ")


def test_the_workflow_runs_ci_run_with_its_services() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert {"postgres", "redis"} <= set(job["services"])
    assert job["services"]["postgres"]["ports"] == ["5432:5432"]
    assert job["services"]["redis"]["ports"] == ["6379:6379"]
    assert any(step.get("run") == "bash .ci/run" for step in job["steps"])

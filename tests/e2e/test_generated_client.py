"""A third-party client generated from the served document works against the real server.

openapi-python-client is what many Python users reach for; its output must import and complete a
user's first session: register -> login -> me -> refresh -> logout -> waitlist, and upload a
project and a package version with every optional field set.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated(live_server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("generated")
    document = workdir / "openapi.json"
    document.write_bytes(httpx.get(f"{live_server}/api/v1/openapi.json").content)
    config = workdir / "config.yaml"
    config.write_text("project_name_override: orbsurv_client\npost_hooks: []\n")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path", str(document),
            "--config", str(config),
            "--meta", "none",
            "--output-path", str(workdir / "orbsurv_client"),
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(workdir))
    try:
        yield importlib.import_module("orbsurv_client")
    finally:
        sys.path.remove(str(workdir))
        for name in [m for m in sys.modules if m.split(".")[0] == "orbsurv_client"]:
            del sys.modules[name]


def test_every_generated_module_imports(generated: Any) -> None:
    root = Path(generated.__file__).parent
    modules = sorted(root.glob("api/*/*.py"))
    assert len(modules) > 40
    for path in modules:
        if path.name != "__init__.py":
            importlib.import_module(f"orbsurv_client.api.{path.parent.name}.{path.stem}")


def test_a_first_session_with_the_generated_client(generated: Any, live_server: str) -> None:
    api = "orbsurv_client.api"
    identity = f"{api}.identity"
    models = importlib.import_module("orbsurv_client.models")
    register = importlib.import_module(f"{identity}.api_v1_auth_register_register")
    login = importlib.import_module(f"{identity}.api_v1_auth_login_login")
    me = importlib.import_module(f"{identity}.api_v1_users_me_users_me")
    refresh = importlib.import_module(f"{identity}.api_v1_auth_refresh_refresh")
    logout = importlib.import_module(f"{identity}.api_v1_auth_logout_logout")
    waitlist = importlib.import_module(f"{api}.marketing.api_v1_waitlist_waitlist")

    anonymous = generated.Client(base_url=live_server)
    email = f"generated-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery"
    created = register.sync(
        client=anonymous, body=models.RegistrationRequest(email=email, password=password)
    )
    assert isinstance(created, models.TokenPair), created
    assert created.user.email == email

    pair = login.sync(client=anonymous, body=models.LoginRequest(email=email, password=password))
    assert isinstance(pair, models.TokenPair), pair
    signed_in = generated.AuthenticatedClient(base_url=live_server, token=pair.access_token)
    profile = me.sync(client=signed_in)
    assert isinstance(profile, models.UserOut), profile
    assert profile.email == email

    rotated = refresh.sync(
        client=anonymous, body=models.RefreshRequest(refresh_token=pair.refresh_token)
    )
    assert isinstance(rotated, models.TokenPair), rotated
    assert rotated.refresh_token != pair.refresh_token

    current = generated.AuthenticatedClient(base_url=live_server, token=rotated.access_token)
    ended = logout.sync_detailed(client=current, body=models.LogoutRequest())
    assert ended.status_code == 204
    assert me.sync_detailed(client=current).status_code == 401  # the session is over

    joined = waitlist.sync_detailed(
        client=anonymous, body=models.WaitlistForm(email=email, source="generated-client")
    )
    assert joined.status_code == 201, joined.content
    assert isinstance(joined.parsed, models.Answer)


def test_the_generated_client_uploads_with_every_field(generated: Any, live_server: str) -> None:
    """The generated client sends the required parts first (the file among them) and every
    optional field after the file; both uploads take them all."""
    models = importlib.import_module("orbsurv_client.models")
    types = importlib.import_module("orbsurv_client.types")
    upload = importlib.import_module("orbsurv_client.api.projects.api_v1_projects_upload_project")
    publish = importlib.import_module(
        "orbsurv_client.api.software_packages.api_v1_software_packages_publish_package"
    )
    register = importlib.import_module("orbsurv_client.api.identity.api_v1_auth_register_register")
    anonymous = generated.Client(base_url=live_server)
    email = f"uploader-{uuid.uuid4().hex[:10]}@example.com"
    pair = register.sync(
        client=anonymous,
        body=models.RegistrationRequest(email=email, password="correct horse battery"),
    )
    assert isinstance(pair, models.TokenPair), pair
    signed_in = generated.AuthenticatedClient(base_url=live_server, token=pair.access_token)

    data = b"generated client bytes " * 100
    project_body = models.ApiV1ProjectsUploadProjectBody(
        name="Generated project",
        file=types.File(payload=io.BytesIO(data), file_name="gen.zip", mime_type="application/zip"),
        description="sent after the file",
        version="3.1",
        is_public=True,
        visibility=models.ApiV1ProjectsUploadProjectBodyVisibility.PUBLIC,
    )
    names = [name for name, _ in project_body.to_multipart()]
    assert names.index("file") < names.index("description")  # the order that was refused
    project = upload.sync_detailed(client=signed_in, body=project_body)
    assert project.status_code == 201, project.content
    assert isinstance(project.parsed, models.ProjectOut)
    assert (project.parsed.name, project.parsed.description, project.parsed.version) == (
        "Generated project",
        "sent after the file",
        "3.1",
    )
    assert str(project.parsed.visibility) == "public"
    assert project.parsed.size == len(data)

    package_body = models.ApiV1SoftwarePackagesPublishPackageBody(
        name="generated-pack",
        version="1.2.3",
        file=types.File(
            payload=io.BytesIO(data), file_name="gen.tgz", mime_type="application/gzip"
        ),
        description="sent after the file",
        category="tools",
        language="python",
        is_public=True,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    published = publish.sync_detailed(client=signed_in, body=package_body)
    assert published.status_code == 201, published.content
    package_id = json.loads(published.content)["package_id"]
    package = httpx.get(
        f"{live_server}/api/v1/software-packages/{package_id}",
        headers={"Authorization": f"Bearer {pair.access_token}"},
        timeout=30,
    ).json()
    assert package["description"] == "sent after the file"
    assert (package["category"], package["language"], package["is_public"]) == (
        "tools",
        "python",
        True,
    )
    assert package["latest_version"] == "1.2.3"

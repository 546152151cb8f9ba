"""A third-party client generated from the served document works against the real server.

openapi-python-client is what many Python users reach for; its output must import and complete a
user's first session: register -> login -> me -> refresh -> logout -> waitlist.
"""

from __future__ import annotations

import importlib
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

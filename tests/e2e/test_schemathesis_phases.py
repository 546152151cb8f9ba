"""Schemathesis's own runner in every phase that applies (examples, coverage, fuzzing, stateful),
signed in, against the real server: no failure except the ones listed here with their reason."""

from __future__ import annotations

import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

#: (operation, words of the failure) -> why it is not a defect.
ACCEPTED = {
    ("POST /api/v1/auth/logout", "Schema-violating request accepted"): (
        "form-encoded booleans are read leniently ('0'/'1' as well as 'false'/'true'), as HTML "
        "forms send them; JSON bodies stay strict"
    ),
}


def test_all_phases_find_nothing_unlisted(live_server: str, tmp_path: Path) -> None:
    email = f"phases-{uuid.uuid4().hex[:10]}@example.com"
    registered = httpx.post(
        f"{live_server}/api/v1/auth/register",
        json={"email": email, "password": "correct horse battery"},
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["access_token"]
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"), "run",
            f"{live_server}/api/v1/openapi.json",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--exclude-checks", "positive_data_acceptance",  # valid shape, refused by a rule
            "--max-examples", "5",
            "--seed", "1",
            "--continue-on-failure",
            "--no-color",
            "-H", f"Authorization: Bearer {token}",
            "--report", "junit", "--report-junit-path", str(junit),
        ],
        capture_output=True, text=True, timeout=1800, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert junit.is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    found: list[str] = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for failure in [*case.iter("failure"), *case.iter("error")]:
            text = (failure.get("message") or "") + (failure.text or "")
            if not any(
                case.get("name", "").startswith(op) and words in text for op, words in ACCEPTED
            ):
                found.append(f"{case.get('name')}: {text[:400]}")
    assert found == [], "\n".join(found)

"""The project documents itself, and the documentation stays true."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from orbsurv.main.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_in_the_configuration_reference() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`", reference, flags=re.MULTILINE))
    missing = [f.encode_name for f in msgspec.structs.fields(Settings)]
    missing = [name for name in missing if name not in documented]
    assert not missing, f"not in docs/configuration.md: {missing}"


@pytest.mark.parametrize(
    "page", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))]
)
def test_local_links_resolve(page: str) -> None:
    path = ROOT / page if page == "README.md" else ROOT / "docs" / page
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{page} links to missing {target}"


def test_readme_links_every_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    for guide in ("architecture", "configuration", "api", "operations"):
        assert f"(docs/{guide}.md)" in readme
    assert "../shared" not in readme

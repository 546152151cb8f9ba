"""The dependency rule: the domain imports only the standard library; the application only the
domain and itself. Neither imports a framework or a driver."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "orbsurv"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def offenders(layer: str, allowed_own: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top in STDLIB or module.startswith(allowed_own):
                continue
            bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize(
    ("layer", "allowed"),
    [
        ("domain", ("orbsurv.domain",)),
        ("application", ("orbsurv.domain", "orbsurv.application")),
    ],
)
def test_core_imports_only_the_standard_library_and_inner_layers(
    layer: str, allowed: tuple[str, ...]
) -> None:
    assert offenders(layer, allowed) == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "leak.py"
    sample.write_text("import sqlalchemy\nfrom litestar import get\nimport json\n")
    modules = [m for _, m in imported_modules(sample) if m.split(".")[0] not in STDLIB]
    assert modules == ["sqlalchemy", "litestar"]


def test_adapters_never_import_the_composition_root() -> None:
    bad = [
        f"{path.relative_to(SRC)}:{line}"
        for path in sorted((SRC / "adapters").rglob("*.py"))
        for line, module in imported_modules(path)
        if module.startswith("orbsurv.main")
    ]
    assert bad == []

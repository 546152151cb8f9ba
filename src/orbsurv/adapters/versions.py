"""``SemverScheme``: the ``VersionScheme`` port on the ``semver`` library (SemVer 2.0.0).

Precedence follows the specification's section 11: pre-releases rank below their release,
identifiers compare numerically or lexically, build metadata is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

import semver

from orbsurv.domain.errors import FieldInvalid


class SemverScheme:
    def normalise(self, text: str) -> str:
        try:
            return str(semver.Version.parse(text.strip()))
        except (ValueError, TypeError):
            raise FieldInvalid(
                "version", "must be a semantic version such as 1.2.3 (semver.org)"
            ) from None

    def highest(self, versions: Iterable[str]) -> str | None:
        best: tuple[semver.Version, str] | None = None
        for text in versions:
            parsed = semver.Version.parse(text)
            if best is None or parsed.compare(best[0]) > 0:
                best = (parsed, text)
        return None if best is None else best[1]

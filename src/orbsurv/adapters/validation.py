"""Input checks shared by every driving adapter (HTTP schemas, the CLI)."""

from __future__ import annotations

import re
import unicodedata

from confusable_homoglyphs import categories
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from orbsurv.domain.errors import FieldInvalid, MixedScript
from orbsurv.domain.identity import EMAIL_MAX_LENGTH, normalise_email

# An ASCII host name (RFC 1123 labels), for special-use domains the validator refuses by design.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_STAND_IN_DOMAIN = "example.com"


_HEADER_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def checked_header_text(value: str, *, field: str) -> str:
    """``value`` for a mail header (Subject, a display name), or ``FieldInvalid`` naming
    ``field`` when it holds a line break or another control character.

    CR/LF would end the header and start a new one (header injection, RFC 5322 section 2.2);
    Python's ``email`` package also breaks header lines at every character ``str.splitlines``
    knows (VT, FF, FS/GS/RS, NEL U+0085, U+2028, U+2029) and then refuses to build the
    message, so such a subject would be accepted and never sent. Refused: every C0 and C1
    control and DEL (Unicode category Cc) and the line and paragraph separators (Zl, Zp),
    which covers all of those; other non-ASCII text is fine (encoded per RFC 2047)."""
    if any(unicodedata.category(c) in _HEADER_REFUSED_CATEGORIES for c in value):
        raise FieldInvalid(field, "must be one line without control characters or line breaks")
    return value


# Unicode TR39 section 5.2, "Highly Restrictive": one script, or Latin with one of these
# combinations (the scripts written together in Japanese, Chinese and Korean text). Common
# (digits, punctuation, "@") and Inherited (combining marks) belong to every script.
_SHARED_SCRIPTS = frozenset({"COMMON", "INHERITED", "UNKNOWN"})
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def scripts_of(text: str) -> frozenset[str]:
    """The Unicode scripts (``LATIN``, ``CYRILLIC``...) of ``text``'s characters, Common and
    Inherited left out (the ``confusable_homoglyphs`` tables of Scripts.txt)."""
    return frozenset(categories.alias(c) for c in text) - _SHARED_SCRIPTS


def refuse_mixed_script(value: str, *, field: str) -> str:
    """``value`` unchanged, or ``MixedScript`` (422 ``mixed_script`` naming ``field``) when it
    mixes scripts beyond TR39's "Highly Restrictive" level (section 5.2): ``admin`` spelt with a
    Cyrillic a (U+0430) is refused; ``Zoë``, ``田中ひろし`` and ``Ωmega-Ω`` (one script) pass.
    Each part of an address (the local part, each domain label) is judged on its own: a
    Cyrillic domain under a Latin local part is not a look-alike of anything."""
    for part in re.split(r"[@.]", value):
        scripts = scripts_of(part)
        if len(scripts) > 1 and not any(scripts <= mix for mix in _ALLOWED_MIXES):
            names = ", ".join(sorted(s.title() for s in scripts))
            raise MixedScript(
                field,
                f"mixes scripts ({names}) the way look-alike identifiers do: write it in one "
                "script",
            )
    return value


def is_special_use(domain: str) -> bool:
    """Whether ``domain`` is or lies under a special-use name (RFC 6761, RFC 7686: ``test``,
    ``localhost``, ``invalid``, ``local``, ``onion``, ``arpa``), which no public mail reaches."""
    name = domain.strip().rstrip(".").lower()
    return any(name == d or name.endswith(f".{d}") for d in SPECIAL_USE_DOMAIN_NAMES)


def checked_email(value: str, *, field: str = "email", allow_special_use: bool = False) -> str:
    """The normalised address, or ``FieldInvalid`` naming ``field``. No DNS look-up.

    Special-use domains (``dev@localhost``, ``admin@orbsurv.test``) are refused unless
    ``allow_special_use`` (development and tests: ``ALLOW_SPECIAL_USE_EMAIL_DOMAINS``); the
    local part is checked by the same rules either way."""
    candidate = value.strip()
    if len(candidate) > EMAIL_MAX_LENGTH:
        raise FieldInvalid(field, f"must be at most {EMAIL_MAX_LENGTH} characters")
    local, at, domain = candidate.rpartition("@")
    if allow_special_use and at and is_special_use(domain):
        if not _HOST.match(domain.lower()):
            raise FieldInvalid(field, "is not a valid email address (the domain is not valid)")
        checked_local = _validated(f"{local}@{_STAND_IN_DOMAIN}", field).rpartition("@")[0]
        return normalise_email(f"{checked_local}@{domain}")
    return normalise_email(_validated(candidate, field))


def _validated(candidate: str, field: str) -> str:
    try:
        validated = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldInvalid(field, f"is not a valid email address ({exc})") from None
    normalized = str(validated.normalized)
    # Compatibility characters (fullwidth letters, ligatures, superscripts) look like the plain
    # letters they stand for, yet make another local part: a fullwidth "dev@example.com" would
    # be an account of its own beside the plain one (UTS #39 confusables; OWASP: canonicalise
    # identities). The domain needs no such check: IDNA (UTS #46) maps it to the plain form.
    if unicodedata.normalize("NFKC", normalized) != normalized:
        raise FieldInvalid(
            field, "holds compatibility characters (fullwidth or similar): write the plain form"
        )
    return refuse_mixed_script(normalized, field=field)

"""The permission matrix, the token codec and the refresh-token seal, as properties."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbsurv.adapters.security.otp import TotpVerifier
from orbsurv.adapters.security.tokens import AUDIENCE, ISSUER, JwtTokenCodec
from orbsurv.application.identity.tokens import hash_token, new_refresh_token, seal, unseal
from orbsurv.domain.errors import Unauthenticated
from orbsurv.domain.identity import DEV_SCOPED, Permission, Principal, Role, Scope

SECRET = "s" * 64
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@given(
    role=st.sampled_from(Role), scope=st.sampled_from(Scope), permission=st.sampled_from(Permission)
)
def test_permission_matrix(role: Role, scope: Scope, permission: Permission) -> None:
    allowed = role.allows(permission, scope)
    if permission is Permission.ADMINISTER:
        assert allowed == (role is Role.DEV and scope is Scope.DEV)
    elif permission is Permission.USE_PORTAL:
        assert allowed
    elif permission is Permission.READ_CONSOLE:
        # A dev reads the console only in a dev scope; an admin in any.
        assert allowed == (role is Role.ADMIN or (role is Role.DEV and scope is Scope.DEV))
    else:  # MANAGE_CONTENT: an admin in any scope, a dev only in a dev scope
        assert allowed == (role is Role.ADMIN or (role is Role.DEV and scope is Scope.DEV))
    # Power never decreases with rank in a dev scope; in a user scope a dev is a plain user for
    # the console, and is told to open a dev session rather than that the role forbids it.
    for higher in Role:
        if higher.at_least(role) and allowed and scope is Scope.DEV:
            assert higher.allows(permission, scope)
    assert role.needs_dev_scope(permission, scope) == (
        role is Role.DEV and scope is Scope.USER and permission in DEV_SCOPED
    )


def test_a_dev_without_the_second_factor_cannot_administer() -> None:
    assert not Principal("u", Role.DEV, Scope.USER, "s").can(Permission.ADMINISTER)
    assert not Principal("u", Role.DEV, Scope.USER, "s").can(Permission.READ_CONSOLE)
    assert Principal("u", Role.DEV, Scope.USER, "s").can(Permission.USE_PORTAL)
    assert Principal("u", Role.ADMIN, Scope.USER, "s").can(Permission.READ_CONSOLE)
    assert Principal("u", Role.DEV, Scope.DEV, "s", ("pwd", "otp")).can(Permission.ADMINISTER)
    assert not Principal("u", Role.ADMIN, Scope.DEV, "s").can(Permission.ADMINISTER)


ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
)


@given(
    user_id=ids,
    session_id=ids,
    role=st.sampled_from(Role),
    scope=st.sampled_from(Scope),
    amr=st.lists(st.sampled_from(["pwd", "otp"]), max_size=2),
)
def test_codec_round_trip(
    user_id: str, session_id: str, role: Role, scope: Scope, amr: list[str]
) -> None:
    codec = JwtTokenCodec(SECRET, 900)
    token, expires_in = codec.issue_access(
        user_id=user_id,
        session_id=session_id,
        role=role,
        scope=scope,
        amr=amr,
        now=datetime.now(UTC),
    )
    claims = codec.decode_access(token)
    assert expires_in == 900
    assert (claims.subject, claims.session_id, claims.role, claims.scope) == (
        user_id,
        session_id,
        role,
        scope,
    )
    assert claims.amr == tuple(amr)


def forge(**changes: object) -> str:
    now = int(datetime.now(UTC).timestamp())
    payload: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u",
        "sid": "s",
        "jti": "j",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "typ": "access",
        "role": "dev",
        "scope": "dev",
        "amr": ["pwd", "otp"],
    }
    algorithm = str(changes.pop("alg", "HS256"))
    secret = str(changes.pop("secret", SECRET))
    payload.update(changes)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret if algorithm != "none" else None, algorithm=algorithm)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "token",
    [
        forge(alg="none"),
        forge(alg="HS512"),
        forge(secret="another-secret-another-secret-another"),
        forge(typ="refresh"),
        forge(typ="reset"),
        forge(aud="someone-else"),
        forge(iss="elsewhere"),
        forge(exp=int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())),
        forge(nbf=int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())),
        forge(sid=None),
        forge(role="superuser"),
        forge(scope="root"),
        "not.a.jwt",
        "",
        "x" * 5000,
    ],
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        JwtTokenCodec(SECRET, 900).decode_access(token)
    assert caught.value.code == "invalid_token"


def test_tampered_payload_is_refused() -> None:
    token = forge()
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload[:-2]}AA.{signature}"
    with pytest.raises(Unauthenticated):
        JwtTokenCodec(SECRET, 900).decode_access(tampered)


@given(st.data())
def test_refresh_tokens_are_long_and_sealed_children_need_the_parent(data: st.DataObject) -> None:
    parent, child = new_refresh_token(), new_refresh_token()
    assert len(parent) >= 43  # 256 bits, urlsafe base64
    sealed = seal(child, parent)
    assert child not in sealed
    assert unseal(sealed, parent) == child
    other = data.draw(st.sampled_from([new_refresh_token(), parent[:-1] + "x"]))
    with contextlib.suppress(ValueError):  # a ValueError: not even a token
        assert unseal(sealed, other) != child
    assert hash_token(parent) != hash_token(child)
    assert len(hash_token(parent)) == 64


def test_totp_matches_its_step_and_neighbours_only() -> None:
    import pyotp

    otp = TotpVerifier()
    secret = otp.new_secret()
    totp = pyotp.TOTP(secret)
    step = totp.timecode(NOW)
    assert otp.matching_step(secret, totp.at(NOW), NOW) == step
    assert otp.matching_step(secret, totp.at(NOW - timedelta(seconds=30)), NOW) == step - 1
    assert otp.matching_step(secret, totp.at(NOW + timedelta(seconds=30)), NOW) == step + 1
    assert otp.matching_step(secret, totp.at(NOW - timedelta(seconds=90)), NOW) is None
    for junk in ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦"]:
        assert otp.matching_step(secret, junk, NOW) is None
    assert otp.provisioning_uri(secret, "ada@example.com").startswith("otpauth://totp/Orbsurv:")

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conversation_api.auth import Principal, Role, TokenDecoder, mint_token
from conversation_api.errors import NotAuthenticated
from conversation_api.settings import Settings

SECRET = "unit-test-secret-0123456789-0123456789"


def decoder(**overrides: object) -> TokenDecoder:
    return TokenDecoder(Settings(_env_file=None, jwt_secret=SECRET, **overrides))  # type: ignore[arg-type]


def test_a_minted_token_decodes_to_its_subject_and_role() -> None:
    token = mint_token(secret=SECRET, user_id="alice", role="csr", ttl_seconds=60)
    assert decoder().decode(token) == Principal(user_id="alice", role=Role.csr)


def test_expired_token_is_refused_with_a_reason() -> None:
    token = mint_token(secret=SECRET, user_id="alice", role="client", ttl_seconds=-10)
    with pytest.raises(NotAuthenticated, match="expired"):
        decoder().decode(token)


def test_forged_token_is_refused() -> None:
    token = mint_token(secret="another-secret-0123456789-0123456789", user_id="alice", role="admin", ttl_seconds=60)
    with pytest.raises(NotAuthenticated, match="signature"):
        decoder().decode(token)


@pytest.mark.parametrize("missing", ["sub", "exp", "role"])
def test_required_claims(missing: str) -> None:
    claims = {"sub": "alice", "role": "client", "exp": int(time.time()) + 60}
    del claims[missing]
    with pytest.raises(NotAuthenticated, match=missing):
        decoder().decode(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_unknown_role_and_garbage_are_refused() -> None:
    bad_role = jwt.encode({"sub": "a", "role": "root", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(NotAuthenticated, match="role"):
        decoder().decode(bad_role)
    with pytest.raises(NotAuthenticated, match="malformed"):
        decoder().decode("not-a-jwt")


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode({"sub": "a", "role": "admin", "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(NotAuthenticated, match="not accepted"):
        decoder().decode(unsigned)


def test_rs256_is_accepted_only_with_a_configured_public_key() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    token = jwt.encode({"sub": "bob", "role": "client", "exp": int(time.time()) + 60}, private, algorithm="RS256")
    assert decoder(jwt_public_key=public_pem).decode(token).user_id == "bob"
    with pytest.raises(NotAuthenticated, match="not accepted"):
        decoder().decode(token)

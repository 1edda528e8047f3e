"""Bearer JWT authentication: who is calling, and in which role."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

import jwt

from conversation_api.errors import NotAuthenticated
from conversation_api.settings import Settings


class Role(enum.StrEnum):
    client = "client"
    csr = "csr"
    admin = "admin"
    # Conversation designers review what customers wrote and turn it into training data (review/).
    designer = "designer"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.csr, Role.admin)

    @property
    def is_reviewer(self) -> bool:
        """May read the review queue and annotate (designers and admins)."""
        return self.role in (Role.designer, Role.admin)


class TokenDecoder:
    """Verifies HS256 tokens (JWT_SECRET) and, when a public key is configured, RS256."""

    def __init__(self, settings: Settings) -> None:
        self._keys: dict[str, str] = {"HS256": settings.jwt_secret}
        if settings.jwt_public_key:
            self._keys["RS256"] = settings.jwt_public_key

    def decode(self, token: str) -> Principal:
        try:
            algorithm = str(jwt.get_unverified_header(token).get("alg"))
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated(f"malformed token: {exc}") from exc
        key = self._keys.get(algorithm)
        if key is None:
            raise NotAuthenticated(f"token algorithm {algorithm!r} is not accepted")
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm], options={"require": ["sub", "exp", "role"]})
        except jwt.ExpiredSignatureError as exc:
            raise NotAuthenticated("token expired") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise NotAuthenticated(f"token is missing the {exc.claim!r} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise NotAuthenticated("token signature is invalid") from exc
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated(f"invalid token: {exc}") from exc
        try:
            role = Role(claims["role"])
        except ValueError as exc:
            raise NotAuthenticated(f"unknown role {claims['role']!r}") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise NotAuthenticated("token subject must be a non-empty string")
        return Principal(user_id=subject, role=role)


def mint_token(*, secret: str, user_id: str, role: Role | str, ttl_seconds: int) -> str:
    """An HS256 token for development and tests."""
    now = int(time.time())
    claims = {"sub": user_id, "role": Role(role).value, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")
